"""Face detectors on real photos, the registry, and plugins found through entry points."""

from __future__ import annotations

import importlib
import sys
import textwrap

import numpy as np
import pytest

from emodetect.classifiers import CLASSIFIERS
from emodetect.detectors import DETECTORS, HaarDetector, SSDDetector, create_detector, list_detectors
from emodetect.errors import UnknownBackendError, WeightsError
from emodetect.images import read_image

# Photos whose faces are all frontal and unambiguous; counts checked by eye on the annotated images.
EXPECTED_SSD_FACES = {
    "happy/1-2.jpg": 3,
    "happy/happy-person.jpeg": 1,
    "happy/Travis-Bradberry-Happy.jpg": 2,
    "sad/Crying-girl.jpg": 1,
    "sad/51079685_M.jpg": 1,
    "happy/HAPPY-PEOPLE-CLUB-LOGO.jpg": 0,
}


@pytest.fixture
def ssd(ssd_home):
    return create_detector("ssd")


@pytest.mark.parametrize("relative, expected", sorted(EXPECTED_SSD_FACES.items()))
def test_ssd_face_count_on_photo(ssd, paper_images, relative, expected):
    detections = ssd.detect(read_image(paper_images / relative))

    assert len(detections) == expected


def test_ssd_boxes_inside_image_and_face_sized(ssd, paper_images):
    image = read_image(paper_images / "happy" / "1-2.jpg")

    detections = ssd.detect(image)

    height, width = image.shape[:2]
    boxes = detections.boxes
    assert (boxes[:, 0] >= 0).all()
    assert (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= width).all()
    assert (boxes[:, 3] <= height).all()
    box_widths = boxes[:, 2] - boxes[:, 0]
    box_heights = boxes[:, 3] - boxes[:, 1]
    # The three women's faces are 50-70 px wide in a 590 px wide photo, and taller than wide.
    assert ((box_widths > 40) & (box_widths < 90)).all()
    assert (box_heights / box_widths > 1.0).all()
    assert (detections.scores >= 0.5).all()


def test_ssd_faces_sorted_by_score(ssd, paper_images):
    detections = ssd.detect(read_image(paper_images / "happy" / "Travis-Bradberry-Happy.jpg"))

    assert detections.scores.tolist() == sorted(detections.scores.tolist(), reverse=True)


def test_ssd_threshold_filters_weak_faces(ssd_home, paper_images):
    image = read_image(paper_images / "happy" / "227-2271622_happy-people-business-team-celebrating-png.png")

    loose = create_detector("ssd", confidence_threshold=0.3).detect(image)
    strict = create_detector("ssd", confidence_threshold=0.9).detect(image)

    assert len(strict) < len(loose)
    assert (strict.scores >= 0.9).all()


def test_ssd_batch_equals_single_calls(ssd, paper_images):
    images = [read_image(paper_images / relative) for relative in ("happy/1-2.jpg", "sad/Crying-girl.jpg")]

    batched = ssd.detect_batch(images)

    assert [len(found) for found in batched] == [3, 1]
    for image, found in zip(images, batched):
        np.testing.assert_allclose(found.boxes, ssd.detect(image).boxes)


def test_ssd_finds_nothing_on_blank_image(ssd, blank_image):
    assert len(ssd.detect(blank_image)) == 0


def test_ssd_without_weights_raises():
    with pytest.raises(WeightsError, match="opencv_face_detector_uint8.pb"):
        SSDDetector()


def test_ssd_rejects_threshold_outside_unit_interval(ssd_home):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SSDDetector(confidence_threshold=1.5)


def test_haar_finds_single_frontal_face(paper_images):
    image = read_image(paper_images / "sad" / "51079685_M.jpg")

    detections = HaarDetector().detect(image)

    assert len(detections) == 1
    x1, y1, x2, y2 = detections.boxes[0]
    # The girl's face is left of the photo's centre line, in its upper 70%.
    assert x2 < image.shape[1] * 0.6
    assert y2 < image.shape[0] * 0.7


def test_haar_downscales_large_images_and_maps_boxes_back(paper_images):
    image = read_image(paper_images / "sad" / "Crying-girl.jpg")  # 2560 px wide, shrunk to 800 for the search

    detections = HaarDetector().detect(image)

    assert len(detections) >= 1
    widest = detections[np.argmax(detections.areas)]
    assert widest.boxes[0, 2] - widest.boxes[0, 0] > 500


def test_haar_shrunk_photo_keeps_one_face(paper_images):
    # 804x1280: shrunk by the same factor on both axes, the search finds one face. Shrunk to a rounded
    # size instead, it found three.
    detections = HaarDetector().detect(read_image(paper_images / "happy" / "1902540.jpg"))

    assert len(detections) == 1


def test_unknown_detector_lists_valid_names():
    with pytest.raises(UnknownBackendError) as caught:
        create_detector("retinaface")

    assert "'haar'" in str(caught.value)
    assert "'ssd'" in str(caught.value)


def test_list_detectors_filters_by_pattern():
    assert list_detectors() == sorted(list_detectors())
    assert {"haar", "ssd"} <= set(list_detectors())
    assert list_detectors("s*") == ["ssd"]


PLUGIN_SOURCE = textwrap.dedent(
    '''
    import numpy as np
    from emodetect.detectors import Detector
    from emodetect.results import Detections

    class CornerDetector(Detector):
        """Reports one face in the top-left corner of every image."""

        name = "corner"

        def __init__(self, size=10):
            self.size = size

        def detect(self, image):
            return Detections.from_boxes(np.array([[0, 0, self.size, self.size]]), np.array([1.0]), image.shape)
    '''
)


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """Install a distribution with a detector entry point into a folder on sys.path."""
    (tmp_path / "corner_plugin.py").write_text(PLUGIN_SOURCE)
    dist_info = tmp_path / "corner_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: corner-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[emodetect.detectors]\ncorner = corner_plugin:CornerDetector\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()

    # Let the registry read entry points again, and restore it afterwards.
    monkeypatch.setattr(DETECTORS, "_specs", dict(DETECTORS._specs))
    monkeypatch.setattr(DETECTORS, "_entry_points_loaded", False)
    yield
    sys.modules.pop("corner_plugin", None)


def test_entry_point_detector_is_found(installed_plugin, blank_image):
    assert "corner" in list_detectors()

    detector = create_detector("corner", size=20)

    assert detector.detect(blank_image).boxes.tolist() == [[0, 0, 20, 20]]
    assert DETECTORS.get("corner").source == "entry point corner_plugin:CornerDetector"


def test_broken_entry_point_is_skipped_with_warning(tmp_path, monkeypatch, caplog):
    dist_info = tmp_path / "broken_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[emodetect.classifiers]\nbroken = no_such_module:Thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setattr(CLASSIFIERS, "_specs", dict(CLASSIFIERS._specs))
    monkeypatch.setattr(CLASSIFIERS, "_entry_points_loaded", False)

    names = CLASSIFIERS.names()

    assert "broken" not in names
    assert "happy-sad" in names
    assert "Cannot load classifier entry point 'broken'" in caplog.text


def test_factory_returning_wrong_type_raises(monkeypatch):
    from emodetect.registry import BackendSpec

    monkeypatch.setattr(DETECTORS, "_specs", dict(DETECTORS._specs))
    DETECTORS.add(BackendSpec(name="not-a-detector", factory=lambda: object()))

    with pytest.raises(TypeError, match="expected a Detector subclass"):
        create_detector("not-a-detector")


def _scan_in_threads(scan, jobs):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(scan, jobs))


def test_shared_ssd_is_thread_safe(ssd, paper_images):
    images = [read_image(paper_images / relative) for relative in sorted(EXPECTED_SSD_FACES)]
    # Region scans around each photo's centre run at other input sizes, through the detector's cache of
    # networks, so the threads also mix networks.
    jobs = [(index, region) for index in range(len(images)) for region in (None, (0.25, 0.25, 0.75, 0.75))]

    def scan(job):
        index, region = job
        image = images[index]
        if region is None:
            return ssd.detect(image)
        height, width = image.shape[:2]
        return ssd.detect_region(image, (region[0] * width, region[1] * height, region[2] * width, region[3] * height))

    expected = [scan(job) for job in jobs]
    received = _scan_in_threads(scan, jobs * 8)

    for index, detections in enumerate(received):
        np.testing.assert_allclose(detections.boxes, expected[index % len(jobs)].boxes, atol=1e-3)


def test_shared_haar_is_thread_safe(paper_images):
    haar = HaarDetector()
    images = [read_image(paper_images / relative) for relative in sorted(EXPECTED_SSD_FACES)]
    expected = [haar.detect(image) for image in images]

    received = _scan_in_threads(haar.detect, images * 4)

    for index, detections in enumerate(received):
        np.testing.assert_allclose(detections.boxes, expected[index % len(images)].boxes)


@pytest.mark.parametrize("shape", [(1, 5000), (5000, 1), (3, 100000)])
def test_haar_thin_image_gives_no_face(shape):
    detections = HaarDetector().detect(np.full(shape, 128, np.uint8))

    assert len(detections) == 0
