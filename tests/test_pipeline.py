"""The pipeline end to end on real photos, the Haar fallback, bad input and batching."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

from emodetect import Pipeline
from emodetect.drawing import annotate
from emodetect.detectors import HaarDetector, SSDDetector
from emodetect.errors import ImageReadError, WeightsError
from emodetect.images import read_image


@pytest.fixture
def ssd_pipeline(ssd_home):
    return Pipeline()


def test_pipeline_labels_smiling_group_happy(ssd_pipeline, paper_images):
    result = ssd_pipeline(paper_images / "happy" / "1-2.jpg")

    assert len(result) == 3
    assert result.labels == ["happy", "happy", "happy"]
    assert (result.probabilities[:, 0] > 0.7).all()


def test_pipeline_labels_crying_child_sad(ssd_pipeline, paper_images):
    result = ssd_pipeline(paper_images / "sad" / "Crying-girl.jpg")

    assert result.labels == ["sad"]


def test_pipeline_result_fields(ssd_pipeline, paper_images):
    path = paper_images / "happy" / "1-2.jpg"

    result = ssd_pipeline(path)

    assert result.source == str(path)
    assert result.image_size == (350, 590)
    assert result.class_names == ("happy", "sad")
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_pipeline_accepts_bgr_array(ssd_pipeline, paper_images):
    path = paper_images / "happy" / "1-2.jpg"

    from_path = ssd_pipeline(path)
    from_array = ssd_pipeline(cv2.imread(str(path)))

    assert from_array.source is None
    np.testing.assert_allclose(from_array.boxes, from_path.boxes)
    np.testing.assert_allclose(from_array.probabilities, from_path.probabilities, atol=1e-5)


def test_pipeline_list_gives_one_result_per_image(ssd_pipeline, paper_images):
    paths = [paper_images / "happy" / "1-2.jpg", paper_images / "happy" / "HAPPY-PEOPLE-CLUB-LOGO.jpg"]

    results = ssd_pipeline(paths)

    assert [len(result) for result in results] == [3, 0]


def test_pipeline_classifies_batch_in_one_call(ssd_home, paper_images, monkeypatch):
    pipeline = Pipeline(images_per_batch=8)
    calls = []
    original = pipeline.classifier.predict_proba
    monkeypatch.setattr(pipeline.classifier, "predict_proba", lambda faces: calls.append(len(faces)) or original(faces))
    paths = [paper_images / "happy" / "1-2.jpg", paper_images / "happy" / "Travis-Bradberry-Happy.jpg"] * 2

    pipeline(paths)

    assert calls == [10]


def test_photo_without_face_gives_empty_result(ssd_pipeline, paper_images):
    result = ssd_pipeline(paper_images / "happy" / "HAPPY-PEOPLE-CLUB-LOGO.jpg")

    assert len(result) == 0
    assert result.probabilities.shape == (0, 2)
    assert json.loads(result.to_json())["faces"] == []


def test_one_pixel_image_gives_empty_result(ssd_pipeline):
    assert len(ssd_pipeline(np.zeros((1, 1, 3), np.uint8))) == 0


def test_greyscale_and_rgba_inputs_are_processed(ssd_pipeline, paper_images):
    image = read_image(paper_images / "happy" / "1-2.jpg")
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)

    assert len(ssd_pipeline(grey)) == 3
    assert len(ssd_pipeline(bgra)) == 3


def test_unreadable_file_raises_with_name(ssd_pipeline, tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_text("not an image")

    with pytest.raises(ImageReadError, match="broken.jpg"):
        ssd_pipeline(path)


def test_run_skips_unreadable_and_keeps_order(ssd_pipeline, paper_images, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"")
    good = paper_images / "sad" / "Crying-girl.jpg"

    outcomes = list(ssd_pipeline.run([broken, good]))

    assert [outcome.source for outcome in outcomes] == [str(broken), str(good)]
    assert isinstance(outcomes[0].error, ImageReadError)
    assert outcomes[0].result is None
    assert len(outcomes[1].result) == 1


def test_default_falls_back_to_haar_without_weights(paper_images, caplog):
    with caplog.at_level(logging.WARNING):
        pipeline = Pipeline()

    assert isinstance(pipeline.detector, HaarDetector)
    assert "emodetect download" in caplog.text
    assert len(pipeline(paper_images / "sad" / "51079685_M.jpg")) == 1


def test_explicit_ssd_without_weights_raises():
    with pytest.raises(WeightsError, match="opencv_face_detector"):
        Pipeline(detector="ssd")


def test_default_uses_ssd_when_cached(ssd_pipeline):
    assert isinstance(ssd_pipeline.detector, SSDDetector)


def test_threshold_reaches_named_detector(ssd_home):
    assert Pipeline(detector="ssd", confidence_threshold=0.8).detector.confidence_threshold == 0.8


def test_threshold_with_detector_instance_rejected():
    with pytest.raises(ValueError, match="confidence_threshold"):
        Pipeline(detector=HaarDetector(), confidence_threshold=0.7)


def test_annotate_draws_inside_boxes_only(ssd_pipeline, paper_images):
    image = read_image(paper_images / "happy" / "1-2.jpg")
    result = ssd_pipeline(image)

    drawn = annotate(image, result)

    changed = np.any(drawn != image, axis=2)
    assert changed.any()
    assert not changed[-40:, :].any()  # nothing drawn far below the faces
    assert (image == read_image(paper_images / "happy" / "1-2.jpg")).all()  # input untouched


def test_annotate_rejects_other_image_size(ssd_pipeline, paper_images):
    result = ssd_pipeline(paper_images / "happy" / "1-2.jpg")

    with pytest.raises(ValueError, match="590x350"):
        annotate(np.zeros((10, 10, 3), np.uint8), result)


def test_run_reports_unsupported_item_type(ssd_pipeline, paper_images):
    outcomes = list(ssd_pipeline.run([None, paper_images / "sad" / "Crying-girl.jpg"]))

    assert outcomes[0].source == "<NoneType>"
    assert isinstance(outcomes[0].error, ImageReadError)
    assert len(outcomes[1].result) == 1


def test_classify_clips_boxes_outside_image(ssd_pipeline, paper_images):
    from emodetect.results import Detections

    image = read_image(paper_images / "happy" / "1-2.jpg")  # 590 px wide
    boxes = Detections(np.array([[560, 10, 640, 90], [600, 10, 640, 50]]), np.array([0.9, 0.8]))

    (result,) = ssd_pipeline.classify([image], [boxes])

    assert result.boxes.tolist() == [[560, 10, 590, 90]]


def test_detector_accepts_greyscale_array(ssd_home, paper_images):
    grey = cv2.cvtColor(read_image(paper_images / "happy" / "1-2.jpg"), cv2.COLOR_BGR2GRAY)

    assert len(SSDDetector().detect(grey)) == 3
    assert len(HaarDetector().detect(grey)) >= 1


def test_annotate_greyscale_image_returns_bgr(ssd_pipeline, paper_images):
    grey = cv2.cvtColor(read_image(paper_images / "happy" / "1-2.jpg"), cv2.COLOR_BGR2GRAY)
    result = ssd_pipeline(grey)

    drawn = annotate(grey, result)

    assert drawn.shape == (350, 590, 3)


def test_annotate_in_place_rejects_view(ssd_pipeline, paper_images):
    image = read_image(paper_images / "happy" / "1-2.jpg")
    result = ssd_pipeline(image)

    with pytest.raises(ValueError, match="copy=True"):
        annotate(image[..., ::-1], result, copy=False)


def test_run_single_path_one_outcome(ssd_pipeline, paper_images):
    outcomes = list(ssd_pipeline.run(paper_images / "happy" / "1-2.jpg"))

    assert len(outcomes) == 1
    assert len(outcomes[0].result) == 3


def test_run_single_array_one_outcome(ssd_pipeline, paper_images):
    outcomes = list(ssd_pipeline.run(read_image(paper_images / "happy" / "1-2.jpg")))

    assert len(outcomes) == 1
    assert len(outcomes[0].result) == 3


def test_none_image_names_imread(ssd_pipeline):
    with pytest.raises(ImageReadError, match="cv2.imread returns None"):
        ssd_pipeline(None)


def test_float_frame_classified_like_uint8(ssd_pipeline, paper_images):
    image = read_image(paper_images / "happy" / "1-2.jpg")
    detections = [ssd_pipeline.detector.detect(image)]

    expected = ssd_pipeline.classify([image], detections)[0]
    received = ssd_pipeline.classify([image.astype(np.float32) / 255.0], detections)[0]

    np.testing.assert_allclose(received.probabilities, expected.probabilities, atol=1e-5)


def test_run_takes_4d_array_as_stack(ssd_pipeline, paper_images):
    image = read_image(paper_images / "happy" / "1-2.jpg")

    outcomes = list(ssd_pipeline.run(np.stack([image, image])))

    assert [len(outcome.result) for outcome in outcomes] == [3, 3]
