"""Face tracking across video frames and smoothing of each face's class probabilities over time.

`FaceTracker.update` takes the `PipelineResult` of one frame and its timestamp, and returns the same faces
with a track id per face and smoothed probabilities:

- **Tracking.** Each face in the new frame is matched to the track whose last box overlaps it most, by
  intersection over union (IoU), greedily from the highest IoU down. A face that overlaps no track by at
  least `iou_threshold` starts a new track with a new id. A track that matches no face for more than
  `max_age` seconds is dropped, and its id is never reused.
- **Smoothing.** Each track keeps an exponential moving average (EMA) of its face's probabilities. With
  time constant `tau` seconds and `dt` seconds since the track's previous update, the new average is
  `alpha * current + (1 - alpha) * previous` with `alpha = 1 - exp(-dt / tau)`. After a sudden change
  of expression, the average covers 63% of the step after `tau` seconds and half of it after
  `0.69 * tau`, at any frame rate and with frames skipped. `time_constant=0` turns smoothing off.

Tracking is off for still images (`Pipeline.__call__` and `Pipeline.run` leave `track_ids` at -1) and on
for video (`Pipeline.process_video`, with a 0.5 s time constant unless another is given). To track faces in
frames you read yourself, pass each frame's result to one `FaceTracker`::

    tracker = FaceTracker()
    for timestamp, frame in frames:
        result = tracker.update(pipeline(frame), timestamp)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from emodetect.results import PipelineResult

logger = logging.getLogger(__name__)

DEFAULT_TIME_CONSTANT = 0.5
"""Default EMA time constant for video, in seconds."""


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Compute the intersection over union of every pair of boxes.

    Args:
        boxes_a: `(N, 4)` `(x1, y1, x2, y2)` boxes.
        boxes_b: `(M, 4)` `(x1, y1, x2, y2)` boxes.

    Returns:
        `(N, M)` `float32` array, 0 where boxes do not overlap or have no area.

    Examples:
        >>> box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]]))
        array([[0.33333334, 0.        ]], dtype=float32)
    """
    boxes_a = np.asarray(boxes_a, dtype=np.float32).reshape(-1, 4)
    boxes_b = np.asarray(boxes_b, dtype=np.float32).reshape(-1, 4)
    left = np.maximum(boxes_a[:, None, 0], boxes_b[None, :, 0])
    top = np.maximum(boxes_a[:, None, 1], boxes_b[None, :, 1])
    right = np.minimum(boxes_a[:, None, 2], boxes_b[None, :, 2])
    bottom = np.minimum(boxes_a[:, None, 3], boxes_b[None, :, 3])
    intersection = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)

    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def match_boxes(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pair rows with columns greedily by descending IoU, each row and column at most once.

    Args:
        iou: `(N, M)` IoU of N tracks against M new boxes.
        threshold: Minimum IoU for a pair.

    Returns:
        `(row, column)` pairs, highest IoU first.
    """
    rows, columns = np.nonzero(iou >= threshold)
    order = np.argsort(-iou[rows, columns], kind="stable")
    used_rows: set[int] = set()
    used_columns: set[int] = set()
    pairs = []
    for row, column in zip(rows[order].tolist(), columns[order].tolist()):
        if row in used_rows or column in used_columns:
            continue
        used_rows.add(row)
        used_columns.add(column)
        pairs.append((row, column))
    return pairs


@dataclass
class Track:
    """One face followed across frames.

    Attributes:
        track_id: The face's id, unique within one tracker.
        box: The last matched `(x1, y1, x2, y2)` box.
        probabilities: The smoothed class probabilities.
        last_seen: Timestamp in seconds of the last frame the face was found in.
        hits: Number of frames the face was found in.
    """

    track_id: int
    box: np.ndarray
    probabilities: np.ndarray
    last_seen: float
    hits: int = 1


class FaceTracker:
    """Give faces ids that persist across frames and smooth each face's probabilities over time.

    The module docstring describes the matching and the smoothing formula.

    Args:
        iou_threshold: Minimum IoU, in (0, 1], between a track's last box and a new box for them to be the
            same face. Lower values follow fast motion better but swap ids of faces that pass each other.
        max_age: Seconds a track survives without a matching face, so that a face the detector misses for a
            few frames keeps its id.
        time_constant: EMA time constant `tau` in seconds. 0 turns smoothing off, so each face keeps its
            own frame's probabilities.

    Raises:
        ValueError: A value is out of range.

    Examples:
        >>> from emodetect.results import PipelineResult
        >>> tracker = FaceTracker(time_constant=1.0)
        >>> first = PipelineResult([[10, 10, 50, 50]], [0.9], [[0.9, 0.1]], ("happy", "sad"), (100, 100))
        >>> second = PipelineResult([[12, 10, 52, 50]], [0.9], [[0.1, 0.9]], ("happy", "sad"), (100, 100))
        >>> tracker.update(first, 0.0).track_ids.tolist(), tracker.update(second, 0.1).labels
        ([1], ['happy'])
    """

    def __init__(
        self, iou_threshold: float = 0.3, max_age: float = 1.0, time_constant: float = DEFAULT_TIME_CONSTANT
    ) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"Expected iou_threshold in (0, 1], received {iou_threshold}.")
        # Written as "not >=" so that NaN, which fails every comparison, is rejected too.
        if not max_age >= 0:
            raise ValueError(f"Expected max_age >= 0 seconds, received {max_age}.")
        if not (time_constant >= 0 and math.isfinite(time_constant)):
            raise ValueError(
                f"Expected a finite time_constant >= 0 seconds (0 turns smoothing off), received {time_constant}."
            )

        self.iou_threshold = float(iou_threshold)
        self.max_age = float(max_age)
        self.time_constant = float(time_constant)
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_timestamp = -math.inf

    @property
    def tracks_created(self) -> int:
        """The number of track ids given so far."""
        return self._next_id - 1

    def reset(self) -> None:
        """Forget every track. Ids continue from where they were, so no id is given twice."""
        self.tracks = []
        self._last_timestamp = -math.inf

    def smoothing_factor(self, elapsed: float) -> float:
        """Return the EMA weight `alpha` of a new observation made `elapsed` seconds after the previous one."""
        if self.time_constant == 0:
            return 1.0
        return 1.0 - math.exp(-max(elapsed, 0.0) / self.time_constant)

    def update(self, result: PipelineResult, timestamp: float) -> PipelineResult:
        """Match one frame's faces to the tracks and smooth their probabilities.

        Args:
            result: The pipeline's result for the frame.
            timestamp: The frame's time in seconds, which must not decrease from one call to the next.

        Returns:
            A new result with the same faces in the same order, `track_ids` set, and `probabilities`
            replaced by each track's smoothed probabilities.

        Raises:
            ValueError: The timestamp is earlier than the previous one.
        """
        if timestamp < self._last_timestamp:
            raise ValueError(
                f"Expected non-decreasing timestamps, received {timestamp} s after {self._last_timestamp} s. "
                f"Call reset() before starting another video."
            )
        self._last_timestamp = timestamp

        # Drop tracks not seen for too long before matching, so a face that reappears gets a new id.
        self.tracks = [track for track in self.tracks if timestamp - track.last_seen <= self.max_age]

        track_ids = np.empty(len(result), dtype=np.int64)
        smoothed = result.probabilities.copy()
        matched_faces: set[int] = set()
        if self.tracks and len(result):
            iou = box_iou(np.stack([track.box for track in self.tracks]), result.boxes)
            for row, column in match_boxes(iou, self.iou_threshold):
                track = self.tracks[row]
                alpha = self.smoothing_factor(timestamp - track.last_seen)
                track.probabilities = alpha * result.probabilities[column] + (1.0 - alpha) * track.probabilities
                track.box = result.boxes[column].copy()
                track.last_seen = timestamp
                track.hits += 1
                track_ids[column] = track.track_id
                smoothed[column] = track.probabilities
                matched_faces.add(column)

        for column in range(len(result)):
            if column in matched_faces:
                continue
            track = Track(self._next_id, result.boxes[column].copy(), result.probabilities[column].copy(), timestamp)
            self._next_id += 1
            self.tracks.append(track)
            track_ids[column] = track.track_id
            logger.debug("New face track %d at %.3f s, box %s", track.track_id, timestamp, track.box.tolist())

        return PipelineResult(
            boxes=result.boxes,
            scores=result.scores,
            probabilities=smoothed,
            class_names=result.class_names,
            image_size=result.image_size,
            source=result.source,
            track_ids=track_ids,
        )

    def __repr__(self) -> str:
        return (
            f"FaceTracker(iou_threshold={self.iou_threshold}, max_age={self.max_age}, "
            f"time_constant={self.time_constant})"
        )
