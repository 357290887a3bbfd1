"""Emotion classifiers: the interface, the registry and the Keras-backed implementation."""

from emodetect.classifiers.base import CLASSIFIERS, EmotionClassifier, create_classifier, list_classifiers
from emodetect.classifiers.keras_model import KerasEmotionClassifier, SHIPPED_MODELS, shipped_model_path

__all__ = [
    "CLASSIFIERS",
    "EmotionClassifier",
    "KerasEmotionClassifier",
    "SHIPPED_MODELS",
    "create_classifier",
    "list_classifiers",
    "shipped_model_path",
]
