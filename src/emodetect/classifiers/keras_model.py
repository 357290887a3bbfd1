"""Classifiers backed by a Keras model saved with emodetect metadata, including the shipped models."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Union

import numpy as np

from emodetect.classifiers.base import CLASSIFIERS, EmotionClassifier
from emodetect.classifiers.opencv_net import build_opencv_net, run_opencv_net
from emodetect.errors import ModelNotFoundError
from emodetect.images import check_face_list, prepare_faces
from emodetect.model_io import ModelMetadata, load_model

logger = logging.getLogger(__name__)

SHIPPED_MODELS = {
    "happy-sad": "happy-sad.keras",
    "seven-emotions": "seven-emotions.keras",
}
"""Registered name to file name of the models inside the package's `models/` folder."""


def shipped_model_path(name: str) -> Path:
    """Return the path of a model that ships inside the package.

    Raises:
        KeyError: `name` is not a shipped model.
        ModelNotFoundError: The package was installed without its model file.
    """
    if name not in SHIPPED_MODELS:
        raise KeyError(f"No shipped model named {name!r}; shipped models: {sorted(SHIPPED_MODELS)}.")
    path = Path(str(resources.files("emodetect") / "models" / SHIPPED_MODELS[name]))
    if not path.is_file():
        raise ModelNotFoundError(
            f"The shipped model file '{path}' is missing from this installation. Reinstall emodetect "
            f"(pip install --force-reinstall emodetect) or rebuild it with scripts/train_shipped_models.py {name}."
        )
    return path


def outputs_to_probabilities(outputs: np.ndarray, metadata: ModelMetadata) -> np.ndarray:
    """Turn raw model outputs into `(N, K)` probabilities in `metadata.class_names` order.

    A `sigmoid` model's single output is the probability of the second class. The temperature divides the
    log-probabilities, which equals dividing the logits, before the softmax is taken again.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if metadata.output == "sigmoid":
        positive = outputs.reshape(-1)
        probabilities = np.stack([1.0 - positive, positive], axis=1)
    else:
        probabilities = outputs

    if metadata.temperature != 1.0 and len(probabilities):
        logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / metadata.temperature
        logits -= logits.max(axis=1, keepdims=True)
        exponentials = np.exp(logits)
        probabilities = exponentials / exponentials.sum(axis=1, keepdims=True)
    return probabilities.astype(np.float32)


class KerasEmotionClassifier(EmotionClassifier):
    """An `EmotionClassifier` that runs a Keras model on `prepare_faces` output.

    The model is called directly inside a compiled `tf.function` instead of through `Model.predict`, whose
    per-call overhead dominates the small batches of a video frame. Batches of up to `OPENCV_MAX_BATCH` faces
    run through an OpenCV copy of the network instead, when `emodetect.classifiers.opencv_net` can make one
    (it can for the shipped models): at batch 1 it takes about a quarter of TensorFlow's time. Larger batches
    stay with TensorFlow, which is faster there.

    The OpenCV copy is made from the weights the model has when the classifier is built, so a model that is
    trained further needs a new classifier. An OpenCV network keeps its input between two calls, so a lock
    lets one thread at a time use the copy.

    Args:
        model: The Keras model; input `(None, H, W, C)` with 0-255 values, output per `metadata.output`.
        metadata: Class names and preprocessing settings.
        batch_size: Faces per model call; larger inputs are split.
        fast_path: Run small batches through the OpenCV copy when the model can be copied.

    Raises:
        ValueError: `batch_size` is below 1.
    """

    OPENCV_MAX_BATCH = 16
    """Largest batch run through the OpenCV copy. On 2 CPU cores, TensorFlow became faster between 24 and 32
    faces, so 16 stays clear of that crossover, which depends on the machine."""

    def __init__(self, model: Any, metadata: ModelMetadata, batch_size: int = 64, fast_path: bool = True) -> None:
        import tensorflow as tf

        if batch_size < 1:
            raise ValueError(f"Expected batch_size >= 1, received {batch_size}.")

        self.model = model
        self.metadata = metadata
        self.class_names = tuple(metadata.class_names)
        self.crop_margin = metadata.crop_margin
        self.batch_size = batch_size
        self._input_shape = tuple(int(size) for size in model.input_shape[1:])
        self._forward = tf.function(
            lambda batch: model(batch, training=False),
            input_signature=[tf.TensorSpec((None, *self._input_shape), tf.float32)],
            reduce_retracing=True,
        )
        self._opencv_net = build_opencv_net(model) if fast_path else None
        self._opencv_lock = threading.Lock()

    @property
    def uses_opencv(self) -> bool:
        """Whether small batches run through the OpenCV copy of the network."""
        return self._opencv_net is not None

    @classmethod
    def from_file(cls, path: Union[str, "os.PathLike[str]"], **kwargs: Any) -> "KerasEmotionClassifier":
        """Load a `.keras` file saved by emodetect (`emodetect.model_io.save_model`).

        Raises:
            ModelFormatError: The file is not a `.keras` archive or lacks emodetect metadata.
            ModelNotFoundError: The file does not exist.
        """
        model, metadata = load_model(path)
        logger.debug("Loaded classifier %s with classes %s", path, metadata.class_names)
        return cls(model, metadata, **kwargs)

    def predict_proba(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """Classify a list of face crops of any size: BGR `(H, W, 3)` or greyscale `(H, W)` arrays.

        `uint8` crops are taken as 0-255; `prepare_faces` converts other pixel types.

        Returns:
            `float32` array of shape `(len(faces), len(class_names))`, rows summing to 1.

        Raises:
            ImageReadError: `faces` is one array instead of a list, or a crop is not a usable image.
        """
        check_face_list(faces)
        if len(faces) == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)

        batch = prepare_faces(faces, self.metadata.input_size, self.metadata.color_mode)
        outputs = [self._run(batch[start : start + self.batch_size]) for start in range(0, len(batch), self.batch_size)]
        return outputs_to_probabilities(np.concatenate(outputs), self.metadata)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self._opencv_net is not None and len(batch) <= self.OPENCV_MAX_BATCH:
            with self._opencv_lock:
                return run_opencv_net(self._opencv_net, batch)
        return self._forward(batch).numpy()


def _register_shipped(name: str) -> None:
    def load_shipped(**kwargs: Any) -> KerasEmotionClassifier:
        return KerasEmotionClassifier.from_file(shipped_model_path(name), **kwargs)

    load_shipped.__doc__ = f"The {name} model that ships with emodetect."
    CLASSIFIERS.register(name)(load_shipped)


for _name in SHIPPED_MODELS:
    _register_shipped(_name)
