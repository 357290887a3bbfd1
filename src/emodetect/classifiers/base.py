"""The `EmotionClassifier` interface and the classifier registry."""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from emodetect.registry import Registry


class EmotionClassifier(abc.ABC):
    """Turns face crops into one probability per expression label.

    Subclasses set `class_names` and `crop_margin` and implement `predict_proba`.

    Attributes:
        class_names: Labels in the column order of `predict_proba`'s output.
        crop_margin: Context the classifier wants around a detector box on each side, as a fraction of the
            box side; `Pipeline` crops faces with it.
    """

    class_names: tuple[str, ...] = ()
    crop_margin: float = 0.0

    @abc.abstractmethod
    def predict_proba(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """Classify face crops.

        Args:
            faces: Face crops, each a `uint8` array, BGR `(H, W, 3)` or greyscale `(H, W)`, any size.

        Returns:
            `float32` array of shape `(len(faces), len(class_names))`; each row sums to 1.
        """

    def predict(self, faces: Sequence[np.ndarray]) -> list[str]:
        """Return the most probable label of each face crop."""
        probabilities = self.predict_proba(faces)
        return [self.class_names[index] for index in probabilities.argmax(axis=1)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(class_names={list(self.class_names)})"


CLASSIFIERS: Registry[EmotionClassifier] = Registry(
    "classifier", entry_point_group="emodetect.classifiers", base_class=EmotionClassifier
)
"""Classifier backends by name; third-party packages add theirs through the `emodetect.classifiers` entry point group."""


def create_classifier(name: Union[str, "os.PathLike[str]"] = "happy-sad", **kwargs: Any) -> EmotionClassifier:
    """Build a classifier by registered name, or load one from a saved `.keras` file.

    Args:
        name: A registered name (see `list_classifiers`), or the path of a model saved by emodetect. A name
            that is not registered is taken as a path when it ends with `.keras` or names an existing file.
        **kwargs: Passed to the backend's factory.

    Returns:
        The classifier.

    Raises:
        UnknownBackendError: `name` is neither registered nor a model path.
        ModelNotFoundError: A `.keras` path does not exist.
        ModelFormatError: The file is not a model saved by emodetect.
        TypeError: A plugin's factory returned something that is not an `EmotionClassifier`.

    Examples:
        >>> classifier = create_classifier("happy-sad")
        >>> classifier.class_names
        ('happy', 'sad')
    """
    name = os.fspath(name)
    if name not in CLASSIFIERS.names() and (name.lower().endswith(".keras") or os.path.isfile(name)):
        from emodetect.classifiers.keras_model import KerasEmotionClassifier

        return KerasEmotionClassifier.from_file(name, **kwargs)

    return CLASSIFIERS.create(name, **kwargs)


def list_classifiers(pattern: str = "*") -> list[str]:
    """Return the registered classifier names that match a shell-style pattern, such as `"happy*"`."""
    return CLASSIFIERS.names(pattern)
