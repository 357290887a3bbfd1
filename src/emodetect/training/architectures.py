"""Network builders for emotion classifiers, registered by name.

Each builder takes the number of classes (and optional keyword arguments) and returns an uncompiled Keras
model together with the preprocessing settings it expects. Every model rescales its 0-255 input inside its
first layer, so the saved file carries its own normalisation.

Add a builder with the decorator::

    from emodetect.training.architectures import ARCHITECTURES

    @ARCHITECTURES.register("my-net", "My own network.")
    def build_my_net(num_classes, **options):
        ...
        return Architecture(model=model, input_size=(64, 64), color_mode="grayscale", output="softmax")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emodetect.registry import Registry

if TYPE_CHECKING:
    import keras


@dataclass
class Architecture:
    """A freshly built network and the input it expects."""

    model: "keras.Model"
    input_size: tuple[int, int]
    color_mode: str
    output: str
    default_crop_margin: float = 0.0


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def build_architecture(name: str, num_classes: int, **options: Any) -> Architecture:
    """Build the network registered under `name` for `num_classes` classes.

    Raises:
        UnknownBackendError: No architecture has that name; the message lists the valid names.
        ValueError: `num_classes` is below 2.
    """
    if num_classes < 2:
        raise ValueError(f"Expected at least 2 classes, received {num_classes}.")
    return ARCHITECTURES.create(name, num_classes=num_classes, **options)


def list_architectures(pattern: str = "*") -> list[str]:
    """Return the registered architecture names that match a shell-style pattern."""
    return ARCHITECTURES.names(pattern)


@ARCHITECTURES.register("paper-baseline", "The paper's CNN: 256x256 RGB, Conv 16-32-16, Dense 256, one sigmoid unit.")
def build_paper_baseline(
    num_classes: int = 2,
    input_size: tuple[int, int] = (256, 256),
    normalization: bool = False,
    dropout: float = 0.0,
) -> Architecture:
    """Build the baseline CNN of "Facial Expression Detection", Fig. 1.

    Three 3x3 convolutions with 16, 32 and 16 filters and ReLU, each followed by 2x2 max-pooling, then
    Flatten, Dense(256, ReLU) and Dense(1, sigmoid). At 256x256x3 it has 3,696,625 parameters.

    Args:
        num_classes: Must be 2, because the network has one sigmoid output.
        input_size: `(height, width)`; the paper uses 256x256.
        normalization: Add batch normalisation after each convolution (an option the paper mentions).
        dropout: Dropout rate before the dense layers (0 disables it, as in the paper).

    Raises:
        ValueError: `num_classes` is not 2.
    """
    if num_classes != 2:
        raise ValueError(f"The paper's baseline has one sigmoid output for 2 classes, received num_classes={num_classes}.")

    import keras
    from keras import layers

    height, width = input_size
    inputs = keras.Input(shape=(height, width, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for index, filters in enumerate((16, 32, 16), start=1):
        x = layers.Conv2D(filters, 3, activation=None if normalization else "relu", name=f"conv{index}")(x)
        if normalization:
            x = layers.BatchNormalization(name=f"bn{index}")(x)
            x = layers.Activation("relu", name=f"relu{index}")(x)
        x = layers.MaxPooling2D(name=f"pool{index}")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(256, activation="relu", name="dense")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="probability")(x)

    model = keras.Model(inputs, outputs, name="paper_baseline")
    return Architecture(model=model, input_size=(height, width), color_mode="rgb", output="sigmoid")


@ARCHITECTURES.register("mini-vgg", "A small VGG-style CNN for 48x48 greyscale faces, softmax output.")
def build_mini_vgg(
    num_classes: int,
    input_size: tuple[int, int] = (48, 48),
    width: int = 32,
    dropout: float = 0.4,
) -> Architecture:
    """Build a compact VGG-style network for tightly cropped greyscale faces.

    Four stages of two 3x3 convolutions with batch normalisation (`width`, 2x, 4x and 8x filters), each
    followed by 2x2 max-pooling, then global average pooling, dropout and a softmax layer.

    Args:
        num_classes: Number of output classes.
        input_size: `(height, width)` of the greyscale input.
        width: Filters in the first stage.
        dropout: Dropout rate before the classifier layer.
    """
    import keras
    from keras import layers

    height, width_pixels = input_size
    inputs = keras.Input(shape=(height, width_pixels, 1), name="face")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for stage, multiplier in enumerate((1, 2, 4, 8), start=1):
        for repeat in (1, 2):
            x = layers.Conv2D(width * multiplier, 3, padding="same", use_bias=False, name=f"conv{stage}_{repeat}")(x)
            x = layers.BatchNormalization(name=f"bn{stage}_{repeat}")(x)
            x = layers.Activation("relu", name=f"relu{stage}_{repeat}")(x)
        x = layers.MaxPooling2D(name=f"pool{stage}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Activation("softmax", name="probabilities")(logits)

    model = keras.Model(inputs, outputs, name="mini_vgg")
    return Architecture(
        model=model, input_size=(height, width_pixels), color_mode="grayscale", output="softmax", default_crop_margin=0.0
    )
