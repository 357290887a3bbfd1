"""The `Detector` interface and the detector registry."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

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

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Find faces in several BGR images; backends that can batch override this."""
        return [self.detect(image) for image in images]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


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
