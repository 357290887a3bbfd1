"""The `Detector` interface and the detector registry."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from emodetect.registry import Registry
from emodetect.results import Detections


class Detector(abc.ABC):
    """Finds faces in an image.

    Subclasses implement `detect`. Boxes follow the convention of `emodetect.results`: `(x1, y1, x2, y2)`
    pixels of the input image, clipped to it, without zero-area boxes (build them with
    `Detections.from_boxes`).
    """

    name: str = ""

    @abc.abstractmethod
    def detect(self, image: np.ndarray) -> Detections:
        """Find faces in one image.

        Args:
            image: `uint8` array of shape `(H, W, 3)` in BGR order (as `cv2.imread` returns).

        Returns:
            The face boxes and their confidences, highest confidence first.
        """

    def detect_region(
        self, image: np.ndarray, region: Sequence[float], min_face: Optional[float] = None
    ) -> Detections:
        """Find faces inside one rectangle of an image, at the scale `detect` would see them.

        Video processing calls this between full scans of a frame, with a region around the faces found in
        the previous frame. This default crops the region and runs `detect` on the crop. A backend that
        resizes its input to a fixed size then gets the faces larger than in a full scan, which can change
        what it finds. Backends whose cost grows with the input's pixel count override it to keep the
        scale of a full scan, so that a small region costs less (see `SSDDetector`).

        Args:
            image: BGR `uint8` array of shape `(H, W, 3)`.
            region: `(x1, y1, x2, y2)` pixels of the image; it is clipped to the image.
            min_face: Side in image pixels of the smallest face expected in the region, or None when
                unknown. A backend may scan the region at a lower resolution as long as faces of this size
                stay detectable. This default ignores it.

        Returns:
            Faces found inside the region, with boxes in the coordinates of the whole image.

        Raises:
            ValueError: The region has no area inside the image.
        """
        x1, y1, x2, y2 = clip_region(region, image.shape)
        found = self.detect(image[y1:y2, x1:x2])
        return Detections.from_boxes(found.boxes + np.array([x1, y1, x1, y1], np.float32), found.scores, image.shape)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Find faces in several BGR images; backends that can batch override this."""
        return [self.detect(image) for image in images]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def clip_region(region: Sequence[float], image_shape: Sequence[int]) -> tuple[int, int, int, int]:
    """Round an `(x1, y1, x2, y2)` region outwards to whole pixels and clip it to an image's `(H, W, ...)` shape.

    Raises:
        ValueError: The region has no area inside the image.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    x1 = max(0, int(np.floor(region[0])))
    y1 = max(0, int(np.floor(region[1])))
    x2 = min(width, int(np.ceil(region[2])))
    y2 = min(height, int(np.ceil(region[3])))
    if x2 <= x1 or y2 <= y1:
        raise ValueError(
            f"Expected a region (x1, y1, x2, y2) that overlaps the {width}x{height} image, received {tuple(region)}."
        )
    return x1, y1, x2, y2


DETECTORS: Registry[Detector] = Registry("detector", entry_point_group="emodetect.detectors", base_class=Detector)
"""Detector backends by name; third-party packages add theirs through the `emodetect.detectors` entry point group."""


def create_detector(name: str = "ssd", **kwargs: Any) -> Detector:
    """Build a detector by registered name.

    Args:
        name: A registered name: `"ssd"` (default), `"haar"`, or one added by a plugin (see `list_detectors`).
        **kwargs: Passed to the backend, such as `confidence_threshold=0.6`.

    Raises:
        UnknownBackendError: No detector has that name; the message lists the valid names.
        WeightsError: The backend's weights cannot be had.
        TypeError: A plugin's factory returned something that is not a `Detector`.

    Examples:
        >>> detector = create_detector("haar")
        >>> len(detector.detect(np.zeros((120, 160, 3), np.uint8)))
        0
    """
    return DETECTORS.create(name, **kwargs)


def list_detectors(pattern: str = "*") -> list[str]:
    """Return the registered detector names that match a shell-style pattern, such as `"s*"`."""
    return DETECTORS.names(pattern)
