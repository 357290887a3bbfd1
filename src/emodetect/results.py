"""Result types: `Detections` (boxes and scores) and `PipelineResult` (faces with labels and probabilities).

Both are dataclasses of parallel NumPy arrays, checked when built, with `len()`, indexing by a slice, an
integer array or a boolean mask, and an `empty()` constructor.

Box convention: `(x1, y1, x2, y2)` in pixels of the original image, `float32`, where `(x1, y1)` is the
top-left corner and `(x2, y2)` the bottom-right corner (exclusive), so the width is `x2 - x1`. Boxes are
clipped to the image, and boxes with zero area after clipping are dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union

import numpy as np

Index = Union[int, slice, Sequence[int], np.ndarray]


def _as_index(index: Index) -> Union[slice, np.ndarray]:
    # An integer keeps the leading axis so that indexing always returns the same type with parallel arrays.
    if isinstance(index, (int, np.integer)):
        return np.array([index])
    if isinstance(index, slice):
        return index
    selected = np.asarray(index)
    # An empty list would become a float array, which NumPy refuses as an index.
    return selected.astype(np.intp) if selected.size == 0 else selected


def _fields_equal(first: object, second: object) -> bool:
    """Compare two dataclass objects field by field, arrays by shape and values."""
    for item in fields(first):  # type: ignore[arg-type]
        value, other_value = getattr(first, item.name), getattr(second, item.name)
        if isinstance(value, np.ndarray) or isinstance(other_value, np.ndarray):
            if not np.array_equal(value, other_value):
                return False
        elif value != other_value:
            return False
    return True


# The generated __eq__ would compare NumPy arrays with ==, whose element-wise result has no truth value.
@dataclass(eq=False)
class Detections:
    """Face boxes found in one image.

    Attributes:
        boxes: `(N, 4)` `float32` array of `(x1, y1, x2, y2)` pixel coordinates.
        scores: `(N,)` `float32` detector confidences in [0, 1].

    Examples:
        >>> import numpy as np
        >>> detections = Detections(np.array([[10, 20, 50, 70]]), np.array([0.9]))
        >>> len(detections), detections.boxes.dtype
        (1, dtype('float32'))
    """

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"Expected one score per box, received {len(self.boxes)} boxes and {len(self.scores)} scores.")

    @classmethod
    def empty(cls) -> "Detections":
        """Return detections with no box."""
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    @classmethod
    def from_boxes(cls, boxes: np.ndarray, scores: np.ndarray, image_shape: Sequence[int]) -> "Detections":
        """Build detections from raw boxes: clip them to the image and drop those left without area.

        Args:
            boxes: `(N, 4)` `(x1, y1, x2, y2)` pixel coordinates, possibly outside the image.
            scores: `(N,)` confidences.
            image_shape: The image's `(height, width, ...)` shape.
        """
        height, width = int(image_shape[0]), int(image_shape[1])
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return cls(boxes[keep], np.asarray(scores, dtype=np.float32).reshape(-1)[keep])

    def __eq__(self, other: object) -> bool:
        """Return whether `other` is a `Detections` with the same boxes and scores."""
        if not isinstance(other, Detections):
            return NotImplemented
        return _fields_equal(self, other)

    # Mutable arrays could change an equal object's hash later, so results are unhashable, as with eq=True.
    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: Index) -> "Detections":
        selected = _as_index(index)
        return Detections(self.boxes[selected], self.scores[selected])

    @property
    def areas(self) -> np.ndarray:
        """Box areas in square pixels."""
        return (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])


@dataclass(eq=False)
class PipelineResult:
    """Every face found in one image, with its box, detector score, label and class probabilities.

    Attributes:
        boxes: `(N, 4)` `float32` `(x1, y1, x2, y2)` pixel boxes in the input image.
        scores: `(N,)` detector confidences.
        probabilities: `(N, K)` class probabilities; column `k` is `class_names[k]`.
        class_names: The classifier's labels.
        image_size: `(height, width)` of the image the boxes refer to.
        source: The file path the image came from, or `None` for an array.
        track_ids: `(N,)` face ids that persist across video frames, or -1 where no tracking ran.
    """

    boxes: np.ndarray
    scores: np.ndarray
    probabilities: np.ndarray
    class_names: tuple[str, ...]
    image_size: tuple[int, int]
    source: Optional[str] = None
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.class_names = tuple(self.class_names)
        probabilities = np.asarray(self.probabilities, dtype=np.float32)
        if probabilities.ndim == 1 and probabilities.size == len(self.class_names):
            probabilities = probabilities.reshape(1, -1)  # the row of a single face
        if probabilities.size and (probabilities.ndim != 2 or probabilities.shape[1] != len(self.class_names)):
            raise ValueError(
                f"Expected probabilities of shape (N, {len(self.class_names)}), one column per class of "
                f"{list(self.class_names)}, received shape {probabilities.shape}."
            )
        self.probabilities = probabilities.reshape(-1, len(self.class_names))
        if len(self.track_ids) == 0 and len(self.boxes):
            self.track_ids = np.full(len(self.boxes), -1, dtype=np.int64)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        lengths = {len(self.boxes), len(self.scores), len(self.probabilities), len(self.track_ids)}
        if len(lengths) != 1:
            raise ValueError(
                f"Expected parallel arrays of one length, received {len(self.boxes)} boxes, {len(self.scores)} scores, "
                f"{len(self.probabilities)} probability rows and {len(self.track_ids)} track ids."
            )
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))

    @classmethod
    def empty(cls, class_names: Sequence[str], image_size: Sequence[int], source: Optional[str] = None) -> "PipelineResult":
        """Return a result with no face."""
        return cls(
            np.zeros((0, 4)), np.zeros(0), np.zeros((0, len(class_names))), tuple(class_names), (image_size[0], image_size[1]), source
        )

    def __eq__(self, other: object) -> bool:
        """Return whether `other` is a `PipelineResult` with equal arrays and fields."""
        if not isinstance(other, PipelineResult):
            return NotImplemented
        return _fields_equal(self, other)

    __hash__ = None  # type: ignore[assignment]  # unhashable, as Detections

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: Index) -> "PipelineResult":
        selected = _as_index(index)
        return PipelineResult(
            self.boxes[selected],
            self.scores[selected],
            self.probabilities[selected],
            self.class_names,
            self.image_size,
            self.source,
            self.track_ids[selected],
        )

    @property
    def labels(self) -> list[str]:
        """The most probable class name of each face."""
        return [self.class_names[index] for index in self.probabilities.argmax(axis=1)]

    @property
    def confidences(self) -> np.ndarray:
        """The probability of each face's label."""
        if not len(self):
            return np.zeros((0,), np.float32)
        return self.probabilities.max(axis=1)

    @property
    def detections(self) -> Detections:
        """The boxes and detector scores alone."""
        return Detections(self.boxes, self.scores)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: source, image size, class names and one entry per face.

        Examples:
            >>> result = PipelineResult.empty(["happy", "sad"], (480, 640))
            >>> result.to_dict()["faces"]
            []
        """
        faces = []
        for index in range(len(self)):
            face: dict[str, Any] = {
                "box": [round(float(value), 1) for value in self.boxes[index]],
                "detection_score": round(float(self.scores[index]), 4),
                "label": self.class_names[int(self.probabilities[index].argmax())],
                "score": round(float(self.probabilities[index].max()), 4),
                "probabilities": {
                    name: round(float(value), 4) for name, value in zip(self.class_names, self.probabilities[index])
                },
            }
            if self.track_ids[index] >= 0:
                face["track_id"] = int(self.track_ids[index])
            faces.append(face)
        return {
            "source": self.source,
            "image_size": {"height": self.image_size[0], "width": self.image_size[1]},
            "class_names": list(self.class_names),
            "faces": faces,
        }

    def to_json(self, indent: Optional[int] = 2) -> str:
        """Return `to_dict()` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PipelineResult":
        """Rebuild a result from `to_dict()` output, such as one record of `emodetect detect --json`.

        `to_dict` rounds boxes to 0.1 pixel and scores and probabilities to 4 decimals, so the rebuilt
        arrays equal the original ones to that precision.

        Args:
            data: A dict with `image_size`, `class_names` and `faces`, and optionally `source`.

        Returns:
            The result, with `track_ids` of -1 for faces that have no `track_id`.

        Raises:
            ValueError: A key is missing, or a face lacks the probability of a class.

        Examples:
            >>> result = PipelineResult([[1, 2, 30, 40]], [0.9], [[0.8, 0.2]], ("happy", "sad"), (100, 120))
            >>> PipelineResult.from_dict(result.to_dict()) == result
            True
        """
        expected = (
            "Expected a dict as PipelineResult.to_dict returns it: image_size with height and width, class_names, "
            "and faces, each with a box of 4 numbers, a detection_score and probabilities of every class"
        )
        try:
            class_names = tuple(data["class_names"])
            height, width = data["image_size"]["height"], data["image_size"]["width"]
            faces = data["faces"]
            boxes = [[float(value) for value in face["box"]] for face in faces]
            scores = [float(face["detection_score"]) for face in faces]
            probabilities = [[float(face["probabilities"][name]) for name in class_names] for face in faces]
            track_ids = [int(face.get("track_id", -1)) for face in faces]
        except KeyError as error:
            raise ValueError(f"{expected}. This one lacks {error}.") from None
        except (TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{expected}. Reading it failed: {error}.") from None
        if any(len(box) != 4 for box in boxes):
            raise ValueError(f"{expected}. Received boxes of {sorted({len(box) for box in boxes})} numbers.")

        return cls(
            np.array(boxes, np.float32).reshape(-1, 4),
            np.array(scores, np.float32),
            np.array(probabilities, np.float32).reshape(-1, len(class_names)),
            class_names,
            (height, width),
            data.get("source"),
            np.array(track_ids, np.int64),
        )

    @classmethod
    def from_json(cls, text: str) -> "PipelineResult":
        """Rebuild a result from `to_json()` output; see `from_dict`."""
        return cls.from_dict(json.loads(text))
