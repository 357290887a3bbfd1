"""Training loop: compile, augment, balance classes, fit with early stopping, and save with metadata.

This module imports Keras (and so TensorFlow) when it is imported; `import emodetect` does not import it.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import keras
import numpy as np
import tensorflow as tf

from emodetect.model_io import ModelMetadata, save_model
from emodetect.training.architectures import build_architecture
from emodetect.training.data import ArrayDataset

logger = logging.getLogger(__name__)


@dataclass
class TrainingConfig:
    """Settings of one training run.

    Attributes:
        epochs: Maximum number of passes over the training data.
        batch_size: Images per gradient step.
        learning_rate: Adam learning rate.
        seed: Seed for weight initialisation, shuffling and augmentation.
        augment: Apply random flips, small rotations, shifts, zoom and contrast changes to training images.
        balance_classes: Weight each class by the inverse of its frequency, so the loss favours no class.
        label_smoothing: Softmax models only: target smoothing (0 disables it).
        early_stopping_patience: Stop after this many epochs without a better validation loss and restore the
            best weights; `None` disables early stopping.
        checkpoint: Path of a `.keras` file that receives the best model after every improving epoch, or `None`.
        cosine_decay: Decay the learning rate along a cosine to zero over `epochs` instead of keeping it fixed.
        freeze_features: Train only the layers after the network's last `Flatten` or global pooling layer
            (see `freeze_feature_layers`); used to fine-tune a saved model on little data.
        verbose: Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch.
    """

    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    augment: bool = False
    balance_classes: bool = False
    label_smoothing: float = 0.0
    early_stopping_patience: Optional[int] = None
    checkpoint: Optional[Union[str, "os.PathLike[str]"]] = None
    cosine_decay: bool = False
    freeze_features: bool = False
    verbose: int = 2


@dataclass
class TrainingResult:
    """A trained model, its metadata, and the per-epoch history (`loss`, `accuracy`, `val_loss`, ...)."""

    model: keras.Model
    metadata: ModelMetadata
    history: dict[str, list[float]] = field(default_factory=dict)

    def save(self, path: Union[str, "os.PathLike[str]"]) -> Path:
        """Save the model with its metadata as a `.keras` file."""
        return save_model(self.model, path, self.metadata)


def make_augmentation(seed: int = 0) -> keras.Sequential:
    """Build the random augmentation applied to training faces (values stay in 0-255).

    Faces stay recognisable: horizontal flips, rotations up to about 10 degrees, shifts and zoom up to 10%,
    and contrast changes up to 30%.
    """
    from keras import layers

    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.03, fill_mode="reflect", seed=seed + 1),
            layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 2),
            layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 3),
            layers.RandomContrast(0.3, value_range=(0, 255), seed=seed + 4),
        ],
        name="augmentation",
    )


FEATURE_BOUNDARY_LAYERS = (
    keras.layers.Flatten,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
)
"""Layer types that end the feature extractor of an emodetect network; the layers after them classify."""


def freeze_feature_layers(model: keras.Model) -> list[str]:
    """Freeze every layer up to and including the last `Flatten` or global pooling layer.

    The frozen layers are the convolutional feature extractor; the dense layers after them stay
    trainable. Frozen batch-normalisation layers also stop updating their statistics, because Keras 3 runs
    a non-trainable `BatchNormalization` in inference mode.

    Args:
        model: A functional or sequential Keras model; it is changed in place.

    Returns:
        The names of the layers that stay trainable.

    Raises:
        ValueError: The model has no `Flatten` or global pooling layer, so the feature layers are unknown.
    """
    layers = list(model.layers)
    boundaries = [index for index, layer in enumerate(layers) if isinstance(layer, FEATURE_BOUNDARY_LAYERS)]
    if not boundaries:
        raise ValueError(
            f"Model {model.name!r} has no Flatten or global pooling layer, so its feature layers cannot be separated "
            f"from its classifier layers. Set layer.trainable = False on the layers to freeze instead."
        )

    last = boundaries[-1]
    for layer in layers[: last + 1]:
        layer.trainable = False
    trainable = [layer.name for layer in layers[last + 1 :] if layer.weights]
    logger.info("Froze %d feature layers; training %s", last + 1, trainable)
    return trainable


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Return weights that make each class contribute equally to the loss (mean weight per sample is 1)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    counts[counts == 0] = 1.0
    weights = len(labels) / (num_classes * counts)
    return {index: float(weight) for index, weight in enumerate(weights)}


def train_classifier(
    train: ArrayDataset,
    validation: Optional[ArrayDataset] = None,
    architecture: str = "mini-vgg",
    config: Optional[TrainingConfig] = None,
    model: Optional[keras.Model] = None,
    metadata: Optional[ModelMetadata] = None,
    architecture_options: Optional[dict[str, Any]] = None,
) -> TrainingResult:
    """Train an emotion classifier on preprocessed faces.

    Either builds a fresh network from `architecture`, or continues training `model` (fine-tuning), in
    which case `metadata` must describe it. The returned metadata is a copy: the base model's `extra` moves
    under `extra["base_model"]`, and its temperature is reset to 1.0 because it calibrated the old weights.

    Args:
        train: Training faces from `load_arrays`; must use the input size and colour mode of the network.
        validation: Faces for early stopping, checkpoints and the `val_*` history, or `None`.
        architecture: Registered architecture name, used when `model` is `None`.
        config: Training settings; the defaults are the recipe of the baseline in the paper "Facial
            Expression Detection" (20 epochs, batch 32, Adam 1e-3).
        model: An existing Keras model to fine-tune.
        metadata: The metadata of `model`.
        architecture_options: Keyword arguments for the architecture builder.

    Returns:
        The trained model with metadata and history.

    Raises:
        ValueError: `train` is empty, the data's image shape or class names do not match the network,
            or `model` is given without `metadata`.
    """
    if len(train) == 0:
        raise ValueError("Expected at least one training image, received none. Check the folder and the split.")
    config = config or TrainingConfig()
    keras.utils.set_random_seed(config.seed)

    if model is None:
        built = build_architecture(architecture, len(train.class_names), **(architecture_options or {}))
        model = built.model
        metadata = ModelMetadata(
            class_names=list(train.class_names),
            input_size=built.input_size,
            color_mode=built.color_mode,
            crop_margin=built.default_crop_margin,
            output=built.output,
            architecture=architecture,
        )
    elif metadata is None:
        raise ValueError("Fine-tuning needs the model's metadata: pass metadata=... with model=....")
    else:
        # The history and counts below go into the metadata; the caller's copy stays as it was.
        metadata = copy.deepcopy(metadata)
        if metadata.extra:
            # The base model's own training record moves aside, so it cannot mix with this run's.
            metadata.extra = {"base_model": metadata.extra}
        if metadata.temperature != 1.0:
            logger.info(
                "Resetting the temperature %.4f to 1.0, because it was fitted to the weights before this training",
                metadata.temperature,
            )
            metadata.temperature = 1.0

    expected_shape = tuple(model.input_shape[1:])
    if tuple(train.x.shape[1:]) != expected_shape:
        raise ValueError(
            f"Training images have shape {train.x.shape[1:]} but the network expects {expected_shape}. "
            f"Load them with input_size={metadata.input_size} and color_mode={metadata.color_mode!r}."
        )

    for part, data in (("Training", train), ("Validation", validation)):
        if data is not None and list(data.class_names) != list(metadata.class_names):
            raise ValueError(
                f"{part} labels index the classes {data.class_names} but the model's classes are "
                f"{metadata.class_names}. List the folder with class_names=metadata.class_names."
            )
    if config.freeze_features:
        freeze_feature_layers(model)

    sigmoid = metadata.output == "sigmoid"
    num_classes = len(metadata.class_names)
    steps_per_epoch = int(np.ceil(len(train) / config.batch_size))
    learning_rate: Any = config.learning_rate
    if config.cosine_decay:
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps_per_epoch * config.epochs)

    if sigmoid:
        loss = keras.losses.BinaryCrossentropy()
        metrics: list[Any] = [keras.metrics.BinaryAccuracy(name="accuracy")]
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)

    def encode(labels: np.ndarray) -> np.ndarray:
        if sigmoid:
            return labels.astype(np.float32).reshape(-1, 1)
        return np.eye(num_classes, dtype=np.float32)[labels]

    train_data = tf.data.Dataset.from_tensor_slices((train.x, encode(train.y)))
    train_data = train_data.shuffle(len(train), seed=config.seed, reshuffle_each_iteration=True)
    train_data = train_data.batch(config.batch_size)
    if config.augment:
        augmentation = make_augmentation(config.seed)
        # A sequential map keeps augmentation repeatable: in parallel calls, the random layers' shared seed
        # state is advanced in whatever order the calls run.
        train_data = train_data.map(lambda images, targets: (augmentation(images, training=True), targets))
    train_data = train_data.prefetch(tf.data.AUTOTUNE)

    validation_data = None
    if validation is not None and len(validation):
        validation_data = tf.data.Dataset.from_tensor_slices((validation.x, encode(validation.y))).batch(256)

    callbacks: list[Any] = [_LogProgress(config.epochs)]
    monitor = "val_loss" if validation_data is not None else "loss"
    if config.early_stopping_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=config.early_stopping_patience, restore_best_weights=True
            )
        )
    if config.checkpoint is not None:
        callbacks.append(_MetadataCheckpoint(Path(config.checkpoint), metadata, monitor))

    weights = class_weights(train.y, num_classes) if config.balance_classes else None
    logger.info(
        "Training %s on %d images (%s), validating on %d, for up to %d epochs",
        metadata.architecture or model.name,
        len(train),
        dict(zip(train.class_names, np.bincount(train.y, minlength=num_classes).tolist())),
        len(validation) if validation is not None else 0,
        config.epochs,
    )
    history = model.fit(
        train_data,
        validation_data=validation_data,
        epochs=config.epochs,
        class_weight=weights,
        callbacks=callbacks,
        # The tf.data pipeline above shuffles with the seed; Keras ignores its own shuffle for a Dataset.
        shuffle=False,
        verbose=config.verbose,
    )
    metadata.extra.setdefault("training", {})
    metadata.extra["training"].update(
        {"epochs_run": len(history.history.get("loss", [])), "train_images": len(train), "seed": config.seed}
    )
    return TrainingResult(model=model, metadata=metadata, history={key: [float(v) for v in values] for key, values in history.history.items()})


class _LogProgress(keras.callbacks.Callback):
    """Log one line per epoch through `logging`, for runs whose stdout is not watched."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: Optional[dict[str, float]] = None) -> None:
        shown = ", ".join(f"{key} {value:.4f}" for key, value in sorted((logs or {}).items()) if key != "learning_rate")
        logger.info("Epoch %d/%d: %s", epoch + 1, self.epochs, shown)


class _MetadataCheckpoint(keras.callbacks.Callback):
    """Save the best model so far, with its metadata, whenever the monitored loss improves."""

    def __init__(self, path: Path, metadata: ModelMetadata, monitor: str) -> None:
        super().__init__()
        self.path = path
        self.metadata = metadata
        self.monitor = monitor
        self.best = np.inf

    def on_epoch_end(self, epoch: int, logs: Optional[dict[str, float]] = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or value >= self.best:
            return
        self.best = value
        save_model(self.model, self.path, self.metadata)
        logger.info("Epoch %d: %s improved to %.4f, saved checkpoint %s", epoch + 1, self.monitor, value, self.path)
