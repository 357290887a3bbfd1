"""Region scans and `StreamProcessor`: frames built in memory from real photos, run through the SSD."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emodetect import Detections, Detector, Pipeline
from emodetect.cli import main
from emodetect.detectors import SSDDetector, create_detector
from emodetect.images import crop_face, read_image
from emodetect.stream import DEFAULT_SCAN_EVERY, StreamProcessor
from emodetect.tracking import box_iou

FRAME_SIZE = (640, 480)  # (width, height)
FPS = 30.0

# SSD face boxes of the photos used below, (x1, y1, x2, y2) in the original photo.
HAPPY_FACE = ("happy/happy-person.jpeg", (430, 151, 647, 451))
SAD_FACE = ("sad/Crying-girl.jpg", (583, 446, 1527, 1514))


def pan(image: np.ndarray, count: int, zoom: float) -> list[np.ndarray]:
    """Cut `count` 640x480 frames from a photo with a window that slides right and zooms in by up to `zoom`."""
    height, width = image.shape[:2]
    frames = []
    for step in range(count):
        scale = 1.0 + zoom * step / count
        window_width, window_height = int(width / scale), int(height / scale)
        left = int((width - window_width) * step / max(1, count - 1))
        top = (height - window_height) // 2
        window = image[top : top + window_height, left : left + window_width]
        frames.append(cv2.resize(window, FRAME_SIZE, interpolation=cv2.INTER_AREA))
    return frames


def grey_frame() -> np.ndarray:
    return np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 128, np.uint8)


def paste(frame: np.ndarray, face: np.ndarray, left: int, top: int) -> np.ndarray:
    """Return a copy of `frame` with `face` pasted with its top-left corner at `(left, top)`."""
    frame = frame.copy()
    frame[top : top + face.shape[0], left : left + face.shape[1]] = face
    return frame


def shared_ssd(shared_dir, **options) -> SSDDetector:
    """Build an SSD from the weights in the shared data folder."""
    weights = shared_dir / "weights"
    return SSDDetector(
        model_path=str(weights / "opencv_face_detector_uint8.pb"),
        config_path=str(weights / "opencv_face_detector.pbtxt"),
        **options,
    )


@pytest.fixture(scope="module")
def detector(shared_dir):
    return shared_ssd(shared_dir)


@pytest.fixture(scope="module")
def pipeline(detector):
    return Pipeline(detector=detector, classifier="happy-sad")


@pytest.fixture(scope="module")
def faces(paper_images):
    """160x160 crops around a happy and a sad face."""
    crops = {}
    for label, (name, box) in (("happy", HAPPY_FACE), ("sad", SAD_FACE)):
        face = crop_face(read_image(paper_images / name), box, margin=0.3)
        crops[label] = cv2.resize(face, (160, 160), interpolation=cv2.INTER_AREA)
    return crops


@pytest.fixture(scope="module")
def one_face_frames(paper_images):
    return pan(read_image(paper_images / HAPPY_FACE[0]), 20, zoom=0.4)


@pytest.fixture(scope="module")
def group_frames(paper_images):
    return pan(read_image(paper_images / "happy" / "1-2.jpg"), 20, zoom=0.1)


def run_stream(stream: StreamProcessor, frames: list[np.ndarray]) -> list:
    return [stream.process(frame, index / FPS) for index, frame in enumerate(frames)]


class CropOnlyDetector(Detector):
    """A plugin-like detector that implements only `detect`, running the SSD, so region scans crop exactly."""

    name = "crop-only"

    def __init__(self, ssd: SSDDetector) -> None:
        self.ssd = ssd

    def detect(self, image: np.ndarray) -> Detections:
        return self.ssd.detect(image)


class ZeroWidthDetector(Detector):
    """Returns one real-looking box and one box without width, as a careless plugin might."""

    name = "zero-width"

    def detect(self, image: np.ndarray) -> Detections:
        return Detections(np.array([[100, 100, 180, 200], [100, 100, 100, 200]]), np.array([0.9, 0.8]))


class FixedBoxDetector(Detector):
    """Finds one face at the same place of whatever image it is given, and records the image sizes."""

    name = "fixed-box"

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def detect(self, image: np.ndarray) -> Detections:
        self.shapes.append(image.shape)
        return Detections.from_boxes(np.array([[10, 20, 50, 80]]), np.array([0.9]), image.shape)


def test_region_scan_matches_full_scan(detector, one_face_frames, group_frames):
    stream = StreamProcessor(Pipeline(detector=detector, classifier="happy-sad"))

    for frame in one_face_frames + group_frames:
        full = detector.detect(frame)
        found = detector.detect_region(frame, stream.region(full.boxes, frame.shape))

        assert len(found) == len(full)
        # Each full-scan box has a region-scan box that covers nearly the same pixels.
        assert box_iou(full.boxes, found.boxes).max(axis=1).min() > 0.8


def record_scans(detector: SSDDetector, monkeypatch: pytest.MonkeyPatch) -> list:
    """Make `detector` append `((crop height, crop width), (input width, input height))` for each scan."""
    scans: list = []
    original_run = detector._run

    def recording_run(net, image, input_size):
        scans.append((image.shape[:2], input_size))
        return original_run(net, image, input_size)

    monkeypatch.setattr(detector, "_run", recording_run)
    return scans


def test_large_faces_scanned_at_lower_resolution(shared_dir, one_face_frames, group_frames, monkeypatch):
    shrinking = shared_ssd(shared_dir)
    full_scale = shared_ssd(shared_dir, region_face_side=None)
    stream = StreamProcessor(Pipeline(detector=shrinking, classifier="happy-sad"))
    shrunk_scans = record_scans(shrinking, monkeypatch)
    full_scale_scans = record_scans(full_scale, monkeypatch)

    for frame in one_face_frames[::4] + group_frames[::4]:
        full = full_scale.detect(frame)
        full_scale_scans.pop()
        boxes = full.boxes
        smallest = float(min(np.min(boxes[:, 2] - boxes[:, 0]), np.min(boxes[:, 3] - boxes[:, 1])))
        region = stream.region(boxes, frame.shape)
        found = shrinking.detect_region(frame, region, min_face=smallest)
        full_scale.detect_region(frame, region, min_face=smallest)

        assert len(found) == len(full)
        assert box_iou(full.boxes, found.boxes).max(axis=1).min() > 0.8

    shrunk_areas = [width * height for _, (width, height) in shrunk_scans]
    full_scale_areas = [width * height for _, (width, height) in full_scale_scans]
    # One scan each per frame. Input sides are rounded to steps of 64 pixels, so some regions keep their size.
    assert len(shrunk_areas) == len(full_scale_areas) == 10
    assert all(shrunk <= full for shrunk, full in zip(shrunk_areas, full_scale_areas))
    assert sum(shrunk_areas) < 0.9 * sum(full_scale_areas)


def test_region_shrink_bounded_and_optional(detector):
    # A full scan of a 640x480 frame shrinks heights by 300/480 = 0.625 and widths by 300/640 = 0.469.
    assert detector._region_shrink(None, 0.469) == 1.0
    assert detector._region_shrink(60.0, 0.469) == 1.0
    assert detector._region_shrink(100.0, 0.469) == pytest.approx(40 / 46.9)
    assert detector._region_shrink(1000.0, 0.469) == 0.5
    assert detector._region_shrink(float("nan"), 0.469) == 1.0
    assert detector._region_shrink(5e-324, 0.469) == 1.0
    # A 30-pixel face enlarged three times by the full scan of a 100x100 image keeps the full scan's scale.
    assert detector._region_shrink(30.0, 3.0) == 1.0


@pytest.mark.parametrize("side", [0, -5, float("inf"), float("nan")])
def test_invalid_region_face_side_rejected(shared_dir, side):
    with pytest.raises(ValueError, match="region_face_side"):
        shared_ssd(shared_dir, region_face_side=side)


def test_full_scan_unchanged_by_region_scans(detector, group_frames):
    frame = group_frames[0]
    first = detector.detect(frame)

    # Regions of several sizes, so that the detector uses several network input sizes in between.
    for right in (200, 320, 480, 640):
        detector.detect_region(frame, (0, 0, right, 300))

    np.testing.assert_array_equal(detector.detect(frame).boxes, first.boxes)


def test_region_scan_ignores_faces_outside(detector, faces):
    frame = paste(paste(grey_frame(), faces["happy"], 20, 40), faces["sad"], 440, 260)

    found = detector.detect_region(frame, (0, 0, 300, 300))

    assert len(detector.detect(frame)) == 2
    assert len(found) == 1
    assert found.boxes[0, 2] < 300


def test_default_region_scan_offsets_boxes():
    detector = FixedBoxDetector()
    image = np.zeros((200, 300, 3), np.uint8)

    found = detector.detect_region(image, (100.4, 50, 250, 190.5))

    # The region is rounded outwards to whole pixels: columns 100-250 and rows 50-191.
    assert detector.shapes == [(141, 150, 3)]
    np.testing.assert_array_equal(found.boxes, [[110, 70, 150, 130]])


def test_region_outside_image_rejected(detector):
    with pytest.raises(ValueError, match="overlaps the 640x480 image"):
        detector.detect_region(grey_frame(), (700, 10, 800, 100))


def test_haar_region_scan_finds_face(faces):
    haar = create_detector("haar")
    frame = paste(grey_frame(), faces["happy"], 240, 160)

    found = haar.detect_region(frame, (160, 80, 480, 400))

    assert len(found) == 1
    # The cascade's boxes vary with the search window, so the region's box is compared loosely with the
    # boxes of a full scan, and must lie inside the region.
    assert box_iou(found.boxes, haar.detect(frame).boxes).max() > 0.5
    assert found.boxes[0, 0] >= 160
    assert found.boxes[0, 2] <= 480


def test_stream_alternates_full_and_region_scans(pipeline, one_face_frames):
    stream = pipeline.stream(scan_every=5)

    results = run_stream(stream, one_face_frames)

    assert [len(result) for result in results] == [1] * 20
    assert stream.scans.full == 4
    assert stream.scans.region == 16
    assert stream.scans.rescans == 0


def test_stream_scan_every_one_scans_whole_frames(pipeline, one_face_frames):
    stream = pipeline.stream(scan_every=1)

    run_stream(stream, one_face_frames)

    assert stream.scans.full == 20
    assert stream.scans.region == 0


def test_stream_matches_full_scans(pipeline, group_frames):
    fast = run_stream(pipeline.stream(), group_frames)
    full = run_stream(pipeline.stream(scan_every=1), group_frames)

    for fast_result, full_result in zip(fast, full):
        assert len(fast_result) == 3
        assert box_iou(full_result.boxes, fast_result.boxes).max(axis=1).min() > 0.8
        assert sorted(fast_result.labels) == sorted(full_result.labels)


def test_stream_keeps_track_ids(pipeline, group_frames):
    results = run_stream(pipeline.stream(), group_frames)

    assert {tuple(sorted(result.track_ids.tolist())) for result in results} == {(1, 2, 3)}


def test_face_outside_region_rescanned_at_once(pipeline, faces):
    # The face jumps from the top-left corner to the bottom-right one, far outside the region around it.
    frames = [paste(grey_frame(), faces["happy"], 20, 20)] * 2 + [paste(grey_frame(), faces["happy"], 460, 300)]
    stream = pipeline.stream(scan_every=10)

    results = run_stream(stream, frames)

    assert [len(result) for result in results] == [1, 1, 1]
    assert results[2].boxes[0, 0] > 400
    assert stream.scans.rescans == 1


def test_face_crossing_region_edge_rescanned(pipeline, faces):
    # The face moves right by 60 pixels, more than the region's margin, so it reaches past the region.
    frames = [paste(grey_frame(), faces["happy"], 100, 100)] * 2 + [paste(grey_frame(), faces["happy"], 160, 100)]
    stream = pipeline.stream(scan_every=10)

    results = run_stream(stream, frames)
    full = pipeline.detector.detect(frames[2])

    assert stream.scans.rescans == 1
    np.testing.assert_allclose(results[2].boxes, full.boxes, atol=0.5)


def test_new_face_found_by_next_full_scan(pipeline, faces):
    alone = paste(grey_frame(), faces["happy"], 20, 20)
    together = paste(alone, faces["sad"], 460, 300)
    frames = [alone] * 2 + [together] * 6
    stream = pipeline.stream(scan_every=4)

    counts = [len(result) for result in run_stream(stream, frames)]

    # Full scans run on frames 0 and 4, so the face that appears at frame 2 is found at frame 4.
    assert counts == [1, 1, 1, 1, 2, 2, 2, 2]


def test_frame_size_change_scans_whole_frame(pipeline, faces):
    small = cv2.resize(paste(grey_frame(), faces["happy"], 20, 20), (320, 240))
    stream = pipeline.stream(scan_every=10)

    run_stream(stream, [paste(grey_frame(), faces["happy"], 20, 20), small])

    assert stream.scans.full == 2


def test_stream_without_tracking_leaves_ids(pipeline, one_face_frames):
    results = run_stream(pipeline.stream(tracking=False), one_face_frames[:3])

    assert all((result.track_ids == -1).all() for result in results)


def test_scan_every_below_one_rejected(pipeline):
    with pytest.raises(ValueError, match="scan_every >= 1"):
        pipeline.stream(scan_every=0)


def test_negative_region_margin_rejected(pipeline):
    with pytest.raises(ValueError, match="region_margin >= 0"):
        StreamProcessor(pipeline, region_margin=-0.1)


def test_plugin_face_leaving_region_rescanned(detector, faces):
    pipeline = Pipeline(detector=CropOnlyDetector(detector), classifier="happy-sad")
    frames = [paste(grey_frame(), faces["happy"], 100 + 60 * step, 100) for step in range(5)]
    stream = pipeline.stream(scan_every=10)

    results = run_stream(stream, frames)

    # The crop ends at the region's edge, so a face crossing it gets a cut box unless the frame is rescanned.
    assert stream.scans.rescans >= 3
    for frame, result in zip(frames, results):
        assert box_iou(result.boxes, detector.detect(frame).boxes)[0, 0] > 0.9


def test_plugin_zero_width_box_dropped(faces):
    pipeline = Pipeline(detector=ZeroWidthDetector(), classifier="happy-sad")
    stream = pipeline.stream()

    results = run_stream(stream, [grey_frame()] * 3)

    assert [len(result) for result in results] == [1, 1, 1]


def test_backward_timestamp_rejected_before_detection(pipeline, one_face_frames):
    stream = pipeline.stream()
    stream.process(one_face_frames[0], 1.0)

    with pytest.raises(ValueError, match="Call reset"):
        stream.process(one_face_frames[1], 0.5)
    assert stream.scans.full == 1
    assert stream.scans.region == 0


def test_nan_timestamp_rejected(pipeline, one_face_frames):
    with pytest.raises(ValueError, match="finite timestamp"):
        pipeline.stream().process(one_face_frames[0], float("nan"))


def test_reset_starts_new_stream(pipeline, one_face_frames):
    stream = pipeline.stream(scan_every=10)
    run_stream(stream, one_face_frames[:3])

    stream.reset()
    result = stream.process(one_face_frames[0], 0.0)

    # A new stream scans its first frame whole and gives the face a new id.
    assert stream.scans.full == 2
    assert result.track_ids.tolist() == [2]


@pytest.mark.parametrize("value", [2.5, True, "5"])
def test_scan_every_must_be_integer(pipeline, value):
    with pytest.raises(TypeError, match="integer scan_every"):
        pipeline.stream(scan_every=value)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_region_margin_must_be_finite(pipeline, value):
    with pytest.raises(ValueError, match="finite region_margin"):
        StreamProcessor(pipeline, region_margin=value)


def test_cli_scan_every_help_shows_default(capsys):
    with pytest.raises(SystemExit):
        main(["video", "--help"])

    assert f"(default: {DEFAULT_SCAN_EVERY})" in " ".join(capsys.readouterr().out.split())


def test_cli_scan_every_below_one_exit_code(tmp_path, capsys):
    code = main(["video", str(tmp_path / "clip.avi"), "--scan-every", "0"])

    assert code == 2
    assert "--scan-every must be 1 or more, received 0" in capsys.readouterr().err


class RegionRecordingDetector(FixedBoxDetector):
    """`FixedBoxDetector` that records the smallest face side passed to each region scan."""

    def __init__(self) -> None:
        super().__init__()
        self.min_faces: list = []

    def detect_region(self, image, region, min_face=None):
        self.min_faces.append(min_face)
        return super().detect_region(image, region, min_face)


def test_stream_passes_smallest_face_side():
    detector = RegionRecordingDetector()
    stream = Pipeline(detector=detector, classifier="happy-sad").stream(scan_every=5)

    run_stream(stream, [grey_frame()] * 3)

    # The box of the full scan is 40x60 pixels, so its smallest side is 40. The region scan of the second
    # frame finds a box of the same size inside the region, so the third frame's region scan also gets 40.
    assert detector.min_faces == [40.0, 40.0]


class OldSignatureDetector(FixedBoxDetector):
    """A plugin written before `min_face` existed: its `detect_region` takes only the image and the region."""

    def __init__(self) -> None:
        super().__init__()
        self.region_calls = 0

    def detect_region(self, image, region):
        self.region_calls += 1
        return Detector.detect_region(self, image, region)


def test_plugin_without_min_face_keeps_region_scans():
    detector = OldSignatureDetector()
    stream = Pipeline(detector=detector, classifier="happy-sad").stream(scan_every=5)

    results = run_stream(stream, [grey_frame()] * 6)

    assert [len(result) for result in results] == [1] * 6
    assert detector.region_calls == 4
    assert stream.scans.full == 2


class LosesFaceWhenSizedDetector(RegionRecordingDetector):
    """Finds its face in a region scan only when no face size is passed, like a face found only at full resolution."""

    def detect_region(self, image, region, min_face=None):
        found = super().detect_region(image, region, min_face)
        return found[:0] if min_face is not None else found


def test_missed_sized_scan_pauses_face_sizes():
    detector = LosesFaceWhenSizedDetector()
    stream = Pipeline(detector=detector, classifier="happy-sad").stream(scan_every=100)

    run_stream(stream, [grey_frame()] * 5)

    # Frame 1's region scan gets a face size, misses and is rescanned. Frames 2-4 then keep the full resolution.
    assert detector.min_faces == [40.0, None, None, None]
    assert stream.scans.rescans == 1


def test_sized_region_keeps_full_scan_proportions(detector, faces, monkeypatch):
    happy, sad = (cv2.resize(faces[label], (240, 240), interpolation=cv2.INTER_CUBIC) for label in ("happy", "sad"))
    frame = paste(paste(grey_frame(), happy, 0, 120), sad, 400, 120)
    boxes = detector.detect(frame).boxes
    # A region as wide as the frame around faces large enough for a lower resolution, so that the crop at
    # that resolution would be wider than the frame.
    region = (0, 100, frame.shape[1], 380)
    smallest = float(np.min(boxes[:, 2:] - boxes[:, :2]))
    scans = record_scans(detector, monkeypatch)

    found = detector.detect_region(frame, region, min_face=smallest)

    (crop_height, crop_width), (input_width, input_height) = scans[0]
    assert len(boxes) == 2
    assert detector._region_shrink(smallest, 300 / 640) < 1.0
    assert crop_width == frame.shape[1]
    # The horizontal and vertical scales keep the full scan's ratio of (300 / 640) / (300 / 480) = 0.75.
    assert (input_width / crop_width) / (input_height / crop_height) == pytest.approx(0.75, abs=0.02)
    assert len(found) == 2


def test_aligned_side_tolerates_rounding():
    from emodetect.detectors.opencv_backends import _aligned_side

    # A side computed as 236 give or take rounding must not step up to the next size, 300.
    assert _aligned_side(236 + 1e-9, 300) == 236
    assert _aligned_side(236.01, 300) == 300
    assert _aligned_side(10, 300) == 108


def test_pause_ends_after_its_region_scans(monkeypatch):
    from emodetect import stream as stream_module

    monkeypatch.setattr(stream_module, "FULL_RESOLUTION_PAUSE", 2)
    detector = LosesFaceWhenSizedDetector()
    stream = Pipeline(detector=detector, classifier="happy-sad").stream(scan_every=100)

    run_stream(stream, [grey_frame()] * 6)

    assert detector.min_faces == [40.0, None, None, 40.0, None]


def test_reset_ends_pause():
    detector = LosesFaceWhenSizedDetector()
    stream = Pipeline(detector=detector, classifier="happy-sad").stream(scan_every=100)

    run_stream(stream, [grey_frame()] * 2)
    stream.reset()
    run_stream(stream, [grey_frame()] * 2)

    assert detector.min_faces == [40.0, 40.0]


class JumpingFaceDetector(RegionRecordingDetector):
    """Full scans find the face alternately at two far-apart places; region scans find it cut at the edge."""

    PLACES = ([100, 100, 140, 160], [400, 300, 440, 360])

    def __init__(self) -> None:
        super().__init__()
        self.full_scans = 0

    def detect(self, image):
        box = self.PLACES[self.full_scans % 2]
        self.full_scans += 1
        return Detections.from_boxes(np.array([box]), np.array([0.9]), image.shape)

    def detect_region(self, image, region, min_face=None):
        self.min_faces.append(min_face)
        left, top = region[0], region[1]
        return Detections.from_boxes(np.array([[left, top + 5, left + 40, top + 65]]), np.array([0.9]), image.shape)


def test_moved_face_does_not_pause_face_sizes():
    detector = JumpingFaceDetector()
    stream = Pipeline(detector=detector, classifier="happy-sad").stream(scan_every=100)

    run_stream(stream, [grey_frame()] * 3)

    # Each rescan finds the face outside the region, so the region scan was right to lose it.
    assert stream.scans.rescans == 2
    assert detector.min_faces == [40.0, 40.0]
