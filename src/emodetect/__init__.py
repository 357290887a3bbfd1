"""emodetect: find faces in images and video and classify their expressions.

The public API is small: `Detector` (faces to boxes), `EmotionClassifier` (face crops to probabilities) and
`Pipeline` (images to labelled faces)::

    from emodetect import Pipeline

    pipeline = Pipeline()
    result = pipeline("photo.jpg")

Names are imported on first use, so `import emodetect` loads neither OpenCV nor TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Pipeline": "emodetect.pipeline",
    "PipelineResult": "emodetect.results",
    "Detections": "emodetect.results",
    "Detector": "emodetect.detectors",
    "create_detector": "emodetect.detectors",
    "list_detectors": "emodetect.detectors",
    "EmotionClassifier": "emodetect.classifiers",
    "create_classifier": "emodetect.classifiers",
    "list_classifiers": "emodetect.classifiers",
    "annotate": "emodetect.drawing",
    "load_image": "emodetect.images",
    "EmodetectError": "emodetect.errors",
    "ImageReadError": "emodetect.errors",
    "WeightsError": "emodetect.errors",
    "UnknownBackendError": "emodetect.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:
    from emodetect.drawing import annotate
    from emodetect.classifiers import EmotionClassifier, create_classifier, list_classifiers
    from emodetect.detectors import Detector, create_detector, list_detectors
    from emodetect.errors import EmodetectError, ImageReadError, UnknownBackendError, WeightsError
    from emodetect.images import load_image
    from emodetect.pipeline import Pipeline
    from emodetect.results import Detections, PipelineResult


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'emodetect' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
