"""Evaluation of a classifier on labelled faces, with accuracy, precision and recall (the metrics of
the "Facial Expression Detection" baseline) plus F1, the confusion matrix and calibration error."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from emodetect.classifiers.keras_model import outputs_to_probabilities
from emodetect.metrics import classification_report
from emodetect.model_io import ModelMetadata
from emodetect.training.data import ArrayDataset


def predict_arrays(model: keras.Model, metadata: ModelMetadata, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Return `(N, K)` class probabilities for preprocessed faces, in `metadata.class_names` order."""
    outputs = [np.asarray(model(x[start : start + batch_size], training=False)) for start in range(0, len(x), batch_size)]
    stacked = np.concatenate(outputs) if outputs else np.zeros((0, 1 if metadata.output == "sigmoid" else len(metadata.class_names)))
    return outputs_to_probabilities(stacked, metadata)


def evaluate_arrays(model: keras.Model, metadata: ModelMetadata, data: ArrayDataset) -> dict[str, Any]:
    """Evaluate a model on preprocessed faces whose labels index `data.class_names`.

    The data's class names are matched to the model's by name, so a folder's class order does not matter.

    Returns:
        The dict of `emodetect.metrics.classification_report`, over the model's classes.

    Raises:
        ValueError: The data has a class the model does not know.
    """
    unknown = [name for name in data.class_names if name not in metadata.class_names]
    if unknown:
        raise ValueError(f"The data has classes {unknown} that the model (classes {metadata.class_names}) lacks.")

    to_model_index = np.array([metadata.class_names.index(name) for name in data.class_names], dtype=np.int64)
    probabilities = predict_arrays(model, metadata, data.x)
    return classification_report(to_model_index[data.y], probabilities, metadata.class_names)
