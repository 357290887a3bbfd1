"""Face crops for training: the pipeline's crops, the on-disk cache, and images without a face."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from emodetect.detectors import Detector, create_detector
from emodetect.images import crop_face, prepare_faces, read_image
from emodetect.training.data import FileDataset
from emodetect.training.faces import NO_FACE, FaceCropCache, cache_usage, default_cache_dir, load_face_arrays

GROUP_PHOTO = "happy/1-2.jpg"  # three frontal faces
LOGO = "happy/HAPPY-PEOPLE-CLUB-LOGO.jpg"  # no face


class CountingDetector(Detector):
    """Wraps a detector and counts its calls, to tell cache hits from detections."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        return self.inner.detect(image)

    def __repr__(self) -> str:
        return repr(self.inner)


@pytest.fixture
def ssd(ssd_home):
    return create_detector("ssd")


def test_crops_equal_pipeline_crops(ssd, paper_images, tmp_path):
    path = paper_images / GROUP_PHOTO
    image = read_image(path)
    boxes = ssd.detect(image).boxes
    cropper = FaceCropCache(ssd, crop_margin=0.2, cache_dir=tmp_path)

    found = cropper.faces(path)

    assert len(found) == 3
    for crop, box in zip(found.crops, boxes):
        np.testing.assert_array_equal(crop, crop_face(image, box, 0.2))


def test_loaded_faces_use_prepare_faces(ssd, paper_images, tmp_path):
    path = paper_images / GROUP_PHOTO
    image = read_image(path)
    boxes = ssd.detect(image).boxes
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    dataset = FileDataset([path], np.array([0]), ["happy", "sad"])
    cropper = FaceCropCache(ssd, crop_margin=0.1, cache_dir=tmp_path)

    largest = load_face_arrays(dataset, (64, 64), "rgb", cropper, faces="largest")
    every = load_face_arrays(dataset, (64, 64), "rgb", cropper, faces="all")

    expected = prepare_faces([crop_face(image, boxes[np.argmax(areas)], 0.1)], (64, 64), "rgb")
    np.testing.assert_array_equal(largest.x, expected)
    assert every.x.shape == (3, 64, 64, 3)
    assert every.files == [path, path, path]
    assert every.y.tolist() == [0, 0, 0]


def test_second_run_reads_cache(ssd, paper_images, tmp_path):
    files = [paper_images / GROUP_PHOTO, paper_images / "sad" / "Crying-girl.jpg", paper_images / LOGO]
    first_detector = CountingDetector(ssd)
    first = FaceCropCache(first_detector, cache_dir=tmp_path)
    crops_first = [first.faces(path).crops for path in files]

    second_detector = CountingDetector(ssd)
    second = FaceCropCache(second_detector, cache_dir=tmp_path)
    crops_second = [second.faces(path).crops for path in files]

    assert first_detector.calls == 3
    assert second_detector.calls == 0
    assert second.hits == 3
    for crops_a, crops_b in zip(crops_first, crops_second):
        assert len(crops_a) == len(crops_b)
        for crop_a, crop_b in zip(crops_a, crops_b):
            np.testing.assert_array_equal(crop_a, crop_b)


def test_cache_usage_counts_entries(ssd, paper_images, tmp_path):
    cache = FaceCropCache(ssd, cache_dir=tmp_path / "crops")
    assert cache_usage(tmp_path / "crops") == (0, 0)

    for path in (paper_images / GROUP_PHOTO, paper_images / LOGO):
        cache.faces(path)

    entries, size = cache_usage(tmp_path / "crops")
    assert entries == 2
    assert size == sum(entry.stat().st_size for entry in (tmp_path / "crops").glob("*.npz"))
    assert size > 0


def test_cache_key_follows_settings_and_file(ssd, copy_image, tmp_path):
    path = copy_image(GROUP_PHOTO)
    cropper = FaceCropCache(ssd, crop_margin=0.0, cache_dir=tmp_path / "cache")
    key = cropper.cache_path(path)

    other_margin = FaceCropCache(ssd, crop_margin=0.1, cache_dir=tmp_path / "cache").cache_path(path)
    other_threshold = FaceCropCache("ssd", confidence_threshold=0.8, cache_dir=tmp_path / "cache").cache_path(path)
    path.write_bytes(path.read_bytes() + b"\0")

    assert len({key, other_margin, other_threshold, cropper.cache_path(path)}) == 4


def test_default_cache_under_emodetect_home(isolated_cache):
    assert default_cache_dir() == isolated_cache / "face-crops"


def test_image_without_face_reported(ssd, paper_images, tmp_path, caplog):
    dataset = FileDataset([paper_images / LOGO, paper_images / GROUP_PHOTO], np.array([0, 0]), ["happy", "sad"])
    cropper = FaceCropCache(ssd, cache_dir=tmp_path)

    with caplog.at_level(logging.WARNING, logger="emodetect"):
        data = load_face_arrays(dataset, (48, 48), "grayscale", cropper)

    assert data.skipped == {paper_images / LOGO: NO_FACE}
    assert len(data) == 1
    assert "no face in 1 images" in caplog.text
    assert LOGO.split("/")[1] in caplog.text


def test_undecodable_image_reported(ssd, paper_images, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image\n")
    dataset = FileDataset([broken, paper_images / GROUP_PHOTO], np.array([1, 1]), ["happy", "sad"])

    data = load_face_arrays(dataset, (48, 48), "grayscale", FaceCropCache(ssd, cache_dir=tmp_path / "cache"))

    assert list(data.skipped) == [broken]
    assert data.skipped[broken].startswith("cannot be decoded")
    assert len(data) == 1


def test_crop_cache_survives_damaged_entry(ssd, copy_image, tmp_path):
    path = copy_image(GROUP_PHOTO)
    cropper = FaceCropCache(ssd, cache_dir=tmp_path / "cache")
    cropper.faces(path)
    cropper.cache_path(path).write_bytes(b"garbage")

    found = cropper.faces(path)

    assert len(found) == 3
    assert cropper.misses == 2


def test_training_folder_with_faces(ssd_home, paper_images, tmp_path):
    from emodetect.model_io import ModelMetadata
    from emodetect.training.workflow import FaceOptions, load_folder_splits

    root = tmp_path / "photos"
    for relative in (GROUP_PHOTO, LOGO, "happy/happy-person.jpeg", "sad/Crying-girl.jpg", "sad/51079685_M.jpg"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paper_images / relative, root / relative)
    metadata = ModelMetadata(["happy", "sad"], (48, 48), "grayscale", crop_margin=0.1)

    splits = load_folder_splits(root, metadata, fractions=(1.0,), faces=FaceOptions(faces="all"))

    assert splits.train.class_counts() == {"happy": 4, "sad": 2}
    assert splits.skipped == {root / LOGO: NO_FACE}
    cropper = FaceCropCache("ssd", crop_margin=0.1)
    assert cropper.cache_dir == ssd_home / "face-crops"
    assert all(cropper.cache_path(path).is_file() for path in root.rglob("*.jp*g"))
