"""Saving and loading Keras models together with the metadata emodetect needs.

A saved emodetect model is an ordinary Keras 3 `.keras` file (a zip archive) with one extra member,
`emodetect.json`, that contains the class names, the input size and colour mode, the crop margin and the output
kind. Keras ignores the extra member, so the file still loads with `keras.saving.load_model`, and the class
names travel with the weights: no code assumes an index order.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from emodetect.errors import ModelFormatError, ModelNotFoundError

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)

METADATA_MEMBER = "emodetect.json"
FORMAT_VERSION = 1
OUTPUT_KINDS = ("softmax", "sigmoid")
COLOR_MODES = ("grayscale", "rgb")


@dataclass
class ModelMetadata:
    """Metadata stored beside a Keras model's weights.

    Attributes:
        class_names: One name per output class, in output order. A `sigmoid` model has two names:
            the class its output 0.0 means, then the class its output 1.0 means.
        input_size: `(height, width)` of the model input.
        color_mode: `"grayscale"` or `"rgb"`, as taken by `emodetect.images.prepare_faces`.
        crop_margin: Context added around a detector box on each side, as a fraction of the box side,
            before the crop is resized. Training on detector crops and inference use the same value.
        output: `"softmax"` (one probability per class) or `"sigmoid"` (one unit, two classes).
        temperature: Logits are divided by this before the softmax; 1.0 leaves them as trained.
        architecture: Name of the builder that made the network.
        extra: Free-form training information (data, seed, command, metrics).
    """

    class_names: list[str]
    input_size: tuple[int, int]
    color_mode: str = "grayscale"
    crop_margin: float = 0.0
    output: str = "softmax"
    temperature: float = 1.0
    architecture: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.class_names = [str(name) for name in self.class_names]
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ModelFormatError(f"Expected at least two distinct class names, received {self.class_names}.")
        if self.color_mode not in COLOR_MODES:
            raise ModelFormatError(f"Expected color_mode in {COLOR_MODES}, received {self.color_mode!r}.")
        if self.output not in OUTPUT_KINDS:
            raise ModelFormatError(f"Expected output in {OUTPUT_KINDS}, received {self.output!r}.")
        if self.output == "sigmoid" and len(self.class_names) != 2:
            raise ModelFormatError(
                f"A sigmoid model has exactly two classes, received {len(self.class_names)}: {self.class_names}."
            )
        if min(self.input_size) < 1:
            raise ModelFormatError(f"Expected a positive input size, received {self.input_size}.")
        if self.crop_margin < 0:
            raise ModelFormatError(f"Expected crop_margin >= 0, received {self.crop_margin}.")
        if not math.isfinite(self.temperature) or self.temperature <= 0:
            raise ModelFormatError(f"Expected a finite temperature > 0, received {self.temperature}.")

    def to_json(self) -> str:
        """Serialise to the JSON stored in the model file."""
        return json.dumps({"format": FORMAT_VERSION, **asdict(self)}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelMetadata":
        """Parse the JSON stored in a model file.

        Raises:
            ModelFormatError: The JSON is invalid, of a newer format, or misses a field.
        """
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ModelFormatError(f"Invalid {METADATA_MEMBER}: {error}.") from None

        if not isinstance(values, dict):
            raise ModelFormatError(f"Invalid {METADATA_MEMBER}: expected a JSON object, received {type(values).__name__}.")

        version = values.pop("format", None)
        if version != FORMAT_VERSION:
            raise ModelFormatError(
                f"Unsupported {METADATA_MEMBER} format {version!r}; this emodetect reads format {FORMAT_VERSION}. "
                f"Upgrade emodetect to load this model."
            )
        try:
            return cls(**values)
        except (TypeError, ValueError) as error:
            if isinstance(error, ModelFormatError):
                raise
            raise ModelFormatError(f"Invalid {METADATA_MEMBER}: {error}.") from None


def save_model(model: "keras.Model", path: Union[str, "os.PathLike[str]"], metadata: ModelMetadata) -> Path:
    """Save a Keras model with its emodetect metadata as one `.keras` file.

    The file is written to a temporary name in the same folder and renamed at the end, so an interrupted
    save never leaves a half-written model under the final name.

    Args:
        model: The Keras model. Its input shape must match `metadata.input_size` and colour mode.
        path: Destination; must end with `.keras`.
        metadata: Class names and preprocessing settings.

    Returns:
        The path written.

    Raises:
        ValueError: The path does not end with `.keras`.
        ModelFormatError: The model's input or output shape does not match the metadata (a `ValueError`).
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"Expected a model path ending with '.keras', received '{path}'.")

    check_model_matches(model, metadata)

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".keras", dir=path.parent, prefix=f".{path.stem}-")
    os.close(handle)
    try:
        # An uncompiled copy is saved, because the optimizer's state would triple the file for no use at
        # inference, and fine-tuning compiles a fresh optimizer anyway.
        _without_optimizer(model).save(temporary)
        with zipfile.ZipFile(temporary, "a") as archive:
            archive.writestr(METADATA_MEMBER, metadata.to_json())
        # mkstemp creates the file readable by its owner only; a model is an ordinary, shareable file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)

    logger.info("Saved model with classes %s to %s", metadata.class_names, path)
    return path


def _without_optimizer(model: "keras.Model") -> "keras.Model":
    if getattr(model, "optimizer", None) is None:
        return model

    # clone_model would copy the compiled optimizer too (Keras 3.15), so the copy is rebuilt from the config.
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def read_metadata(path: Union[str, "os.PathLike[str]"]) -> ModelMetadata:
    """Read only the metadata of a saved model, without loading TensorFlow.

    Raises:
        ModelFormatError: The file is not a `.keras` archive or has no emodetect metadata.
        ModelNotFoundError: The file does not exist (a `FileNotFoundError`).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(
            f"Model file not found: '{path}'. Pass the path of a .keras file saved by emodetect or the name of a "
            f"registered classifier."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read(METADATA_MEMBER).decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFormatError(f"The {METADATA_MEMBER} of '{path}' is not UTF-8 text.") from None
    except zipfile.BadZipFile:
        raise ModelFormatError(f"'{path}' is not a Keras 3 '.keras' file (not a zip archive).") from None
    except KeyError:
        raise ModelFormatError(
            f"'{path}' has no {METADATA_MEMBER}, so its class names are unknown. "
            f"Save it with emodetect.model_io.save_model, or build an EmotionClassifier from the Keras model "
            f"and pass class_names."
        ) from None
    return ModelMetadata.from_json(text)


def load_model(path: Union[str, "os.PathLike[str]"]) -> tuple["keras.Model", ModelMetadata]:
    """Load a model saved by `save_model`.

    Returns:
        The Keras model (not compiled) and its metadata.

    Raises:
        ModelFormatError: The file has no valid emodetect metadata or Keras cannot load it.
        ModelNotFoundError: The file does not exist (a `FileNotFoundError`).
    """
    metadata = read_metadata(path)

    import keras

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many exception types for a damaged archive.
        raise ModelFormatError(f"Keras cannot load '{path}': {error}") from error

    check_model_matches(model, metadata, source=str(path))
    return model, metadata


def check_model_matches(model: "keras.Model", metadata: ModelMetadata, source: str = "the model") -> None:
    """Check that a model's input and output shapes agree with its metadata.

    Raises:
        ModelFormatError: The output units, input size or channel count differ from the metadata.
    """
    channels = 1 if metadata.color_mode == "grayscale" else 3
    expected_input = (metadata.input_size[0], metadata.input_size[1], channels)
    actual_input = tuple(model.input_shape[1:])
    if actual_input != expected_input:
        raise ModelFormatError(
            f"The metadata of {source} describes {metadata.color_mode} input of {expected_input}, but the network "
            f"takes {actual_input}. Save the model again with matching input_size and color_mode."
        )

    expected_units = 1 if metadata.output == "sigmoid" else len(metadata.class_names)
    units = int(model.output_shape[-1])
    if units != expected_units:
        raise ModelFormatError(
            f"The network of {source} has {units} outputs, but its metadata ({metadata.output}, classes "
            f"{metadata.class_names}) expects {expected_units}."
        )
