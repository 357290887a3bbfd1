"""Face tracking by box overlap and the per-track moving average of probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emodetect.results import PipelineResult
from emodetect.tracking import FaceTracker, box_iou, match_boxes

CLASSES = ("happy", "sad")


def frame(boxes, probabilities) -> PipelineResult:
    """A result for a 480x640 frame with the given boxes and class probabilities."""
    return PipelineResult(boxes, [0.9] * len(boxes), probabilities, CLASSES, (480, 640))


def test_iou_of_known_boxes():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [0, 0, 0, 0]]))

    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0, 0.0]], rtol=1e-6)


def test_iou_of_empty_inputs_has_shape():
    assert box_iou(np.zeros((0, 4)), np.array([[0, 0, 1, 1]])).shape == (0, 1)
    assert box_iou(np.array([[0, 0, 1, 1]]), np.zeros((0, 4))).shape == (1, 0)


def test_matching_takes_highest_overlap_first():
    iou = np.array([[0.9, 0.8], [0.85, 0.1]])

    # Greedy: (0, 0) first, then row 1 can only take column 1, which is below the threshold.
    assert match_boxes(iou, threshold=0.3) == [(0, 0)]
    assert match_boxes(iou, threshold=0.05) == [(0, 0), (1, 1)]


def test_ids_follow_moving_faces():
    tracker = FaceTracker()
    left, right = [100, 100, 200, 220], [400, 100, 500, 220]

    first = tracker.update(frame([left, right], [[0.9, 0.1], [0.2, 0.8]]), 0.0)
    # Next frame: both faces moved 10 px and are listed in the other order.
    second = tracker.update(frame([[410, 100, 510, 220], [110, 100, 210, 220]], [[0.2, 0.8], [0.9, 0.1]]), 0.04)

    assert first.track_ids.tolist() == [1, 2]
    assert second.track_ids.tolist() == [2, 1]


def test_new_face_gets_new_id():
    tracker = FaceTracker()
    tracker.update(frame([[100, 100, 200, 220]], [[0.9, 0.1]]), 0.0)

    result = tracker.update(frame([[100, 100, 200, 220], [400, 100, 500, 220]], [[0.9, 0.1], [0.5, 0.5]]), 0.04)

    assert result.track_ids.tolist() == [1, 2]
    assert tracker.tracks_created == 2


def test_lost_face_gets_new_id_after_max_age():
    tracker = FaceTracker(max_age=1.0)
    box = [[100, 100, 200, 220]]
    tracker.update(frame(box, [[0.9, 0.1]]), 0.0)

    back_in_time = tracker.update(frame(box, [[0.9, 0.1]]), 0.9)
    tracker.update(frame(np.zeros((0, 4)), np.zeros((0, 2))), 1.0)
    back_too_late = tracker.update(frame(box, [[0.9, 0.1]]), 2.0)

    assert back_in_time.track_ids.tolist() == [1]
    assert back_too_late.track_ids.tolist() == [2]


def test_reset_never_reuses_ids():
    tracker = FaceTracker()
    tracker.update(frame([[100, 100, 200, 220]], [[0.9, 0.1]]), 5.0)

    tracker.reset()
    result = tracker.update(frame([[100, 100, 200, 220]], [[0.9, 0.1]]), 0.0)

    assert result.track_ids.tolist() == [2]


def test_smoothing_covers_63_percent_after_time_constant():
    tracker = FaceTracker(time_constant=0.5)
    box = [[100, 100, 200, 220]]
    tracker.update(frame(box, [[1.0, 0.0]]), 0.0)

    # A step from happy=1 to happy=0, observed at 25 frames per second for 0.5 s.
    for step in range(1, 13):
        result = tracker.update(frame(box, [[0.0, 1.0]]), step * 0.04)

    assert result.probabilities[0, 1] == pytest.approx(1 - math.exp(-0.48 / 0.5), abs=1e-5)


def test_smoothing_independent_of_frame_rate():
    box = [[100, 100, 200, 220]]
    results = []
    for fps in (10, 30):
        tracker = FaceTracker(time_constant=0.5)
        tracker.update(frame(box, [[1.0, 0.0]]), 0.0)
        for step in range(1, fps + 1):
            result = tracker.update(frame(box, [[0.0, 1.0]]), step / fps)
        results.append(result.probabilities[0, 1])

    assert results[0] == pytest.approx(results[1], abs=1e-5)
    assert results[0] == pytest.approx(1 - math.exp(-2.0), abs=1e-5)


def test_smoothing_is_per_track():
    tracker = FaceTracker(time_constant=0.5)
    boxes = [[100, 100, 200, 220], [400, 100, 500, 220]]
    tracker.update(frame(boxes, [[1.0, 0.0], [0.0, 1.0]]), 0.0)

    result = tracker.update(frame(boxes, [[1.0, 0.0], [0.0, 1.0]]), 0.04)

    # Each face keeps its own history: the happy face is not pulled towards the sad one.
    np.testing.assert_allclose(result.probabilities, [[1.0, 0.0], [0.0, 1.0]], atol=1e-6)


def test_zero_time_constant_keeps_raw_probabilities():
    tracker = FaceTracker(time_constant=0)
    box = [[100, 100, 200, 220]]
    tracker.update(frame(box, [[1.0, 0.0]]), 0.0)

    result = tracker.update(frame(box, [[0.3, 0.7]]), 0.04)

    np.testing.assert_allclose(result.probabilities, [[0.3, 0.7]], atol=1e-6)
    assert result.track_ids.tolist() == [1]


def test_update_keeps_boxes_and_scores():
    tracker = FaceTracker()
    original = frame([[100, 100, 200, 220], [400, 100, 500, 220]], [[0.9, 0.1], [0.2, 0.8]])

    result = tracker.update(original, 0.0)

    np.testing.assert_array_equal(result.boxes, original.boxes)
    np.testing.assert_array_equal(result.scores, original.scores)
    assert result.class_names == CLASSES
    assert result.image_size == (480, 640)


def test_decreasing_timestamp_rejected():
    tracker = FaceTracker()
    tracker.update(frame([[100, 100, 200, 220]], [[0.9, 0.1]]), 1.0)

    with pytest.raises(ValueError, match="non-decreasing timestamps"):
        tracker.update(frame([[100, 100, 200, 220]], [[0.9, 0.1]]), 0.5)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"iou_threshold": 0.0}, "iou_threshold"),
        ({"max_age": -1.0}, "max_age"),
        ({"time_constant": -0.1}, "time_constant"),
    ],
)
def test_invalid_tracker_options_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        FaceTracker(**options)


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0])
def test_time_constant_rejects_nan_inf_negative(value):
    with pytest.raises(ValueError, match="finite time_constant"):
        FaceTracker(time_constant=value)


def test_max_age_nan_rejected():
    with pytest.raises(ValueError, match="max_age"):
        FaceTracker(max_age=math.nan)
