"""Result dataclasses: checks, clipping, indexing and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emodetect.results import Detections, PipelineResult


def test_detections_clip_to_image():
    detections = Detections.from_boxes(np.array([[-10, -5, 50, 40]]), np.array([0.9]), (30, 40, 3))

    assert detections.boxes.tolist() == [[0, 0, 40, 30]]


def test_detections_drop_zero_area_boxes():
    boxes = np.array([[10, 10, 10, 20], [5, 5, 8, 9], [50, 50, 60, 60]])

    detections = Detections.from_boxes(boxes, np.array([0.9, 0.8, 0.7]), (40, 40, 3))

    assert detections.boxes.tolist() == [[5, 5, 8, 9]]
    assert detections.scores.tolist() == pytest.approx([0.8])


def test_detections_reject_mismatched_lengths():
    with pytest.raises(ValueError, match="one score per box"):
        Detections(np.zeros((2, 4)), np.zeros(3))


def test_detections_index_by_slice_mask_and_int():
    detections = Detections(np.arange(12).reshape(3, 4), np.array([0.9, 0.5, 0.7]))

    assert len(detections[1:]) == 2
    assert detections[detections.scores > 0.6].scores.tolist() == pytest.approx([0.9, 0.7])
    assert detections[2].boxes.tolist() == [[8, 9, 10, 11]]


def test_detections_empty():
    empty = Detections.empty()

    assert len(empty) == 0
    assert empty.boxes.shape == (0, 4)


def _result():
    return PipelineResult(
        boxes=[[1, 2, 30, 40], [50, 60, 70, 90]],
        scores=[0.99, 0.7],
        probabilities=[[0.8, 0.2], [0.1, 0.9]],
        class_names=("happy", "sad"),
        image_size=(100, 120),
        source="photo.jpg",
    )


def test_result_labels_follow_probabilities():
    result = _result()

    assert result.labels == ["happy", "sad"]
    assert result.confidences.tolist() == pytest.approx([0.8, 0.9])


def test_result_to_json_round_trip():
    data = json.loads(_result().to_json())

    assert data["source"] == "photo.jpg"
    assert data["image_size"] == {"height": 100, "width": 120}
    assert [face["label"] for face in data["faces"]] == ["happy", "sad"]
    assert data["faces"][1]["probabilities"] == {"happy": 0.1, "sad": 0.9}
    assert data["faces"][0]["box"] == [1, 2, 30, 40]


def test_result_slicing_keeps_parallel_arrays():
    second = _result()[1]

    assert second.labels == ["sad"]
    assert second.scores.tolist() == pytest.approx([0.7])


def test_result_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="parallel arrays"):
        PipelineResult([[0, 0, 1, 1]], [0.9], [[0.5, 0.5], [0.5, 0.5]], ("a", "b"), (10, 10))


def test_result_index_with_empty_list():
    assert len(_result()[[]]) == 0


def _two_face_result() -> PipelineResult:
    return PipelineResult(
        boxes=[[0, 0, 10, 10], [20, 20, 40, 40]],
        scores=[0.9, 0.8],
        probabilities=[[0.7, 0.3], [0.2, 0.8]],
        class_names=("happy", "sad"),
        image_size=(50, 50),
    )


def test_results_with_equal_arrays_are_equal():
    import copy

    result = _two_face_result()

    assert result == copy.deepcopy(result)
    assert PipelineResult.empty(["happy", "sad"], (5, 5)) == PipelineResult.empty(["happy", "sad"], (5, 5))
    assert result[:1] != result


def test_results_differing_value_unequal():
    changed = _two_face_result()
    changed.probabilities[0] = [0.6, 0.4]

    assert changed != _two_face_result()


def test_detections_compare_by_values():
    boxes, scores = np.array([[1, 2, 3, 4]]), np.array([0.5])

    assert Detections(boxes, scores) == Detections(boxes.copy(), scores.copy())
    assert Detections(boxes, scores) != Detections.empty()


def test_result_rejects_wrong_probability_columns():
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        PipelineResult(boxes=[[0, 0, 1, 1]], scores=[1.0], probabilities=[[0.2, 0.3, 0.5]], class_names=("a", "b"), image_size=(2, 2))


def test_result_from_json_restores_result():
    result = _two_face_result()
    result.track_ids = np.array([3, -1])
    result.source = "photo.jpg"

    restored = PipelineResult.from_json(result.to_json())

    assert restored == result


def test_result_from_dict_names_missing_key():
    data = _two_face_result().to_dict()
    del data["faces"][0]["probabilities"]["sad"]

    with pytest.raises(ValueError, match="lacks 'sad'"):
        PipelineResult.from_dict(data)


def test_result_from_json_keeps_rounded_values():
    result = _two_face_result()
    result.probabilities = np.array([[0.123456, 0.876544], [0.5, 0.5]], np.float32)

    restored = PipelineResult.from_json(result.to_json())

    np.testing.assert_allclose(restored.probabilities, result.probabilities, atol=1e-4)
    np.testing.assert_allclose(restored.boxes, result.boxes, atol=0.05)


def test_result_from_dict_rejects_short_box():
    data = _two_face_result().to_dict()
    data["faces"][0]["box"] = [1, 2, 3]

    with pytest.raises(ValueError, match=r"boxes of \[3, 4\] numbers"):
        PipelineResult.from_dict(data)


def test_from_dict_names_missing_image_size():
    data = _two_face_result().to_dict()
    del data["image_size"]

    with pytest.raises(ValueError, match="lacks 'image_size'"):
        PipelineResult.from_dict(data)


def test_result_takes_flat_probability_row():
    result = PipelineResult(boxes=[[0, 0, 1, 1]], scores=[1.0], probabilities=[0.8, 0.2], class_names=("a", "b"), image_size=(2, 2))

    assert result.probabilities.shape == (1, 2)
