"""Run a plain Keras CNN through OpenCV's DNN module, which is faster than TensorFlow for small batches.

A video frame usually contains one to a few faces. At batch 1, a call into TensorFlow costs about 2 ms for
the shipped 48x48 networks, most of it fixed per-call work. The same network in OpenCV's DNN module takes
about 0.5 ms. OpenCV cannot read a Keras file, so this module rewrites the model as a TensorFlow graph made
only of the operations that OpenCV's TensorFlow importer supports. Each batch normalisation is folded into
the convolution before it, and the input rescaling into the first convolution.

Only a chain of these layers is converted: `InputLayer`, `Rescaling`, `Conv2D`, `BatchNormalization` right
after a `Conv2D`, `Activation` (relu, sigmoid, softmax, linear), `MaxPooling2D`, `GlobalAveragePooling2D`,
`Dropout` and `Dense`. Any other model keeps running through TensorFlow. A converted network is compared with
the Keras model on a fixed input before it is used, and it is dropped when they disagree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

import cv2
import numpy as np

logger = logging.getLogger(__name__)

MAX_DIFFERENCE = 1e-4
"""Largest accepted absolute difference between the Keras and OpenCV outputs on the check input."""

CHECK_BATCH = 4
"""Inputs in the check batch: several, so that a per-sample layout error shows up."""

ACTIVATIONS = ("linear", "relu", "sigmoid", "softmax")
"""Activation names, as Keras gives them, that the rewrite covers."""


class UnsupportedModelError(ValueError):
    """The Keras model contains a layer or a layer setting that the OpenCV rewrite does not cover."""


@dataclass
class _Step:
    """One operation of the rewritten graph: a kind and its folded float64 parameters."""

    kind: str
    weights: Optional[np.ndarray] = None
    bias: Optional[np.ndarray] = None
    settings: Any = None


def _fold_layers(model: Any) -> list[_Step]:
    """Turn a chain of supported Keras layers into steps, with batch norms and rescaling folded into weights.

    Raises:
        UnsupportedModelError: A layer is not supported, or the layers do not form a single chain.
    """
    steps: list[_Step] = []
    scale, offset = 1.0, 0.0
    previous = None

    for layer in model.layers:
        kind = type(layer).__name__
        config = layer.get_config()
        _check_chain(layer, previous)
        previous = layer

        if kind in ("InputLayer", "Dropout"):
            continue

        if kind == "Rescaling":
            if not (np.ndim(layer.scale) == 0 and np.ndim(layer.offset) == 0):
                raise UnsupportedModelError(f"Layer {layer.name!r} rescales per channel.")
            # Two rescalings in a row compose: (x * a + b) * c + d.
            scale, offset = scale * float(layer.scale), offset * float(layer.scale) + float(layer.offset)
            continue

        if kind == "Conv2D":
            _require(layer, config.get("data_format") == "channels_last", "data_format")
            _require(layer, config.get("groups", 1) == 1, "groups")
            _require(layer, tuple(config.get("dilation_rate", (1, 1))) == (1, 1), "dilation_rate")
            _require(layer, config.get("padding") in ("same", "valid"), "padding")
            weights = [np.asarray(value, dtype=np.float64) for value in layer.get_weights()]
            kernel = weights[0]
            bias = weights[1] if config.get("use_bias", True) else np.zeros(kernel.shape[-1])
            if offset != 0.0 and config["padding"] == "same":
                # The zero border that "same" padding adds is not offset, so the fold below would be wrong there.
                raise UnsupportedModelError(f"Layer {layer.name!r} pads an input that a rescaling offsets.")
            if scale != 1.0 or offset != 0.0:
                # conv(x * s + o) = conv(x) * s + o * (sum of the kernel over its window and input channels).
                bias = bias + offset * kernel.sum(axis=(0, 1, 2))
                kernel = kernel * scale
                scale, offset = 1.0, 0.0
            steps.append(_Step("conv", kernel, bias, (tuple(config["strides"]), config["padding"].upper())))
            steps.extend(_activation_steps(layer, config.get("activation", "linear")))
            continue

        if scale != 1.0 or offset != 0.0:
            raise UnsupportedModelError(f"Layer {layer.name!r} follows a rescaling that is not before a Conv2D.")

        if kind == "BatchNormalization":
            if not steps or steps[-1].kind != "conv":
                raise UnsupportedModelError(f"Batch normalisation {layer.name!r} does not follow a Conv2D directly.")
            _require(layer, config.get("axis") in (-1, [-1], 3, [3]), "axis")
            # gamma and beta are None when the layer was built with scale=False or center=False.
            gamma = 1.0 if layer.gamma is None else np.asarray(layer.gamma, dtype=np.float64)
            beta = 0.0 if layer.beta is None else np.asarray(layer.beta, dtype=np.float64)
            mean = np.asarray(layer.moving_mean, dtype=np.float64)
            variance = np.asarray(layer.moving_variance, dtype=np.float64)
            factor = gamma / np.sqrt(variance + float(config["epsilon"]))
            conv = steps[-1]
            conv.weights = conv.weights * factor
            conv.bias = (conv.bias - mean) * factor + beta
            continue

        if kind == "Activation":
            steps.extend(_activation_steps(layer, config["activation"]))
            continue

        if kind == "MaxPooling2D":
            _require(layer, config.get("data_format") == "channels_last", "data_format")
            steps.append(
                _Step(
                    "maxpool",
                    settings=(tuple(config["pool_size"]), tuple(config["strides"]), config["padding"].upper()),
                )
            )
            continue

        if kind == "GlobalAveragePooling2D":
            _require(layer, config.get("data_format") == "channels_last", "data_format")
            _require(layer, not config.get("keepdims", False), "keepdims")
            steps.append(_Step("mean"))
            continue

        if kind == "Dense":
            weights = [np.asarray(value, dtype=np.float64) for value in layer.get_weights()]
            bias = weights[1] if config.get("use_bias", True) else np.zeros(weights[0].shape[-1])
            steps.append(_Step("dense", weights[0], bias))
            steps.extend(_activation_steps(layer, config.get("activation", "linear")))
            continue

        raise UnsupportedModelError(f"Layer {layer.name!r} is a {kind}, which the OpenCV rewrite does not cover.")

    if scale != 1.0 or offset != 0.0:
        raise UnsupportedModelError("The model ends with a rescaling, which the OpenCV rewrite does not cover.")
    return steps


def build_opencv_net(model: Any) -> Optional["cv2.dnn.Net"]:
    """Rewrite a Keras model for OpenCV's DNN module and check it against the model.

    Args:
        model: A Keras model with a `(None, H, W, C)` input of 0-255 values (`prepare_faces` output).

    Returns:
        An OpenCV network that takes an `(N, C, H, W)` `float32` blob and returns the model's outputs, or
        None when the model cannot be rewritten or the rewrite disagrees with the model. The reason is
        logged.

    Examples:
        >>> import keras
        >>> model = keras.Sequential(
        ...     [
        ...         keras.Input((8, 8, 1)),
        ...         keras.layers.Conv2D(2, 3),
        ...         keras.layers.GlobalAveragePooling2D(),
        ...         keras.layers.Dense(3, activation="softmax"),
        ...     ]
        ... )
        >>> net = build_opencv_net(model)
        >>> run_opencv_net(net, np.zeros((2, 8, 8, 1), np.float32)).shape
        (2, 3)
    """
    try:
        steps = _fold_layers(model)
        input_shape = tuple(int(size) for size in model.input_shape[1:])
        net = cv2.dnn.readNetFromTensorflow(np.frombuffer(_graph_bytes(steps, input_shape), dtype=np.uint8))
    except (UnsupportedModelError, cv2.error, ValueError, TypeError) as error:
        logger.info("The classifier runs through TensorFlow only, which is slower for small batches: %s", error)
        return None

    # The check input is fixed so that a model gets the same verdict every time it is loaded.
    check = np.random.default_rng(0).uniform(0, 255, size=(CHECK_BATCH, *input_shape)).astype(np.float32)
    outputs = model(check, training=False)
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        outputs = outputs[0]
    if isinstance(outputs, (list, tuple, dict)):
        logger.info("The classifier runs through TensorFlow only: the model returns a %s.", type(outputs).__name__)
        return None
    expected = np.asarray(outputs)
    try:
        received = run_opencv_net(net, check)
    except (cv2.error, ValueError) as error:
        logger.warning("The OpenCV copy of the classifier failed on a test input, so TensorFlow runs it: %s", error)
        return None

    difference = float(np.abs(received - expected).max()) if received.shape == expected.shape else np.inf
    if not difference <= MAX_DIFFERENCE:
        logger.warning(
            "The OpenCV copy of the classifier differs from the Keras model by %.3g (allowed %.0e), "
            "so TensorFlow runs it.",
            difference,
            MAX_DIFFERENCE,
        )
        return None

    logger.debug("Classifier also runs through OpenCV (largest difference from Keras %.2g).", difference)
    return net


def run_opencv_net(net: "cv2.dnn.Net", batch: np.ndarray) -> np.ndarray:
    """Run a network from `build_opencv_net` on a `(N, H, W, C)` `float32` batch and return its outputs."""
    net.setInput(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
    return net.forward().reshape(len(batch), -1)


def _graph_bytes(steps: list[_Step], input_shape: tuple[int, ...]) -> bytes:
    """Serialise the steps as a TensorFlow GraphDef made only of constants and OpenCV-readable operations."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tensor = tf.compat.v1.placeholder(tf.float32, (None, *input_shape), name="input")
        for step in steps:
            tensor = _apply(tf, step, tensor)
        tf.identity(tensor, name="output")
    return graph.as_graph_def().SerializeToString()


def _apply(tf: Any, step: _Step, tensor: Any) -> Any:
    def constant(values: Optional[np.ndarray]) -> Any:
        return tf.constant(np.asarray(values, dtype=np.float32))

    if step.kind == "conv":
        strides, padding = step.settings
        tensor = tf.nn.conv2d(tensor, constant(step.weights), strides=[1, *strides, 1], padding=padding)
        return tf.nn.bias_add(tensor, constant(step.bias))
    if step.kind == "dense":
        return tf.nn.bias_add(tf.matmul(tensor, constant(step.weights)), constant(step.bias))
    if step.kind == "maxpool":
        pool_size, strides, padding = step.settings
        return tf.nn.max_pool2d(tensor, pool_size, strides, padding)
    if step.kind == "mean":
        return tf.reduce_mean(tensor, axis=[1, 2])
    return {"relu": tf.nn.relu, "sigmoid": tf.nn.sigmoid, "softmax": tf.nn.softmax}[step.kind](tensor)


def _activation_steps(layer: Any, activation: Any) -> list[_Step]:
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", repr(activation))
    if name not in ACTIVATIONS:
        raise UnsupportedModelError(f"Layer {layer.name!r} uses activation {name!r}; supported: {ACTIVATIONS}.")
    return [] if name == "linear" else [_Step(name)]


def _check_chain(layer: Any, previous: Any) -> None:
    """Reject models whose layers do not feed one into the next, such as residual or multi-input networks."""
    if previous is None:
        return
    try:
        inputs = layer.input
    except (AttributeError, ValueError) as error:
        raise UnsupportedModelError(f"Layer {layer.name!r} has no single input: {error}") from error
    if inputs is not previous.output:
        raise UnsupportedModelError(f"Layer {layer.name!r} does not take the output of {previous.name!r}.")


def _require(layer: Any, condition: bool, setting: str) -> None:
    if not condition:
        value = layer.get_config().get(setting)
        raise UnsupportedModelError(f"Layer {layer.name!r} has {setting}={value!r}, which the rewrite does not cover.")
