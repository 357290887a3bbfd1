"""Temperature scaling: one scalar that makes a classifier's probabilities match how often it is right.

A network trained with label smoothing, or one that overfits, reports probabilities that are too low or too
high. Temperature scaling divides the logits by one scalar `T` fitted on held-out faces by minimising the
negative log-likelihood, which leaves the predicted class of every face unchanged. The fitted value goes into
`ModelMetadata.temperature`, and `outputs_to_probabilities` applies it at inference.

This module uses NumPy only.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from emodetect.metrics import expected_calibration_error

logger = logging.getLogger(__name__)

MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale `(N, K)` probabilities as if their logits were divided by `temperature`.

    Args:
        probabilities: Rows of class probabilities, each summing to 1.
        temperature: Positive scalar; 1.0 returns the probabilities unchanged, values above 1 soften them.

    Returns:
        `float64` array of the same shape, rows summing to 1.

    Raises:
        ValueError: `temperature` is not positive.
    """
    if temperature <= 0:
        raise ValueError(f"Expected a positive temperature, received {temperature}.")
    logits = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exponentials = np.exp(logits)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities: np.ndarray, true: np.ndarray) -> float:
    """Return the mean negative log-likelihood of the true classes (natural log)."""
    picked = np.asarray(probabilities, dtype=np.float64)[np.arange(len(true)), np.asarray(true, dtype=np.int64)]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def fit_temperature(probabilities: np.ndarray, true: np.ndarray, steps: int = 60) -> float:
    """Find the temperature that minimises the negative log-likelihood on held-out faces.

    The negative log-likelihood is convex in `1/T`, so it has a single minimum along `log T`, and a
    golden-section search over `log T` in [log 0.05, log 20] finds it without a gradient.

    Args:
        probabilities: `(N, K)` probabilities of faces the model did not train on, at temperature 1.
        true: `N` integer labels, indices into the columns.
        steps: Golden-section iterations; 60 narrow the interval far below float precision of `T`.

    Returns:
        The fitted temperature.

    Raises:
        ValueError: The inputs are empty or their shapes disagree.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    true = np.asarray(true, dtype=np.int64)
    if probabilities.ndim != 2 or len(probabilities) == 0 or len(probabilities) != len(true):
        raise ValueError(
            f"Expected (N, K) probabilities with N > 0 and N labels, received probabilities of shape "
            f"{probabilities.shape} and {len(true)} labels."
        )

    def loss(log_temperature: float) -> float:
        return negative_log_likelihood(apply_temperature(probabilities, float(np.exp(log_temperature))), true)

    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    low, high = np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)
    left, right = high - ratio * (high - low), low + ratio * (high - low)
    loss_left, loss_right = loss(left), loss(right)
    for _ in range(steps):
        if loss_left < loss_right:
            high, right, loss_right = right, left, loss_left
            left = high - ratio * (high - low)
            loss_left = loss(left)
        else:
            low, left, loss_left = left, right, loss_right
            right = low + ratio * (high - low)
            loss_right = loss(right)
    return float(np.exp((low + high) / 2.0))


def calibration_summary(probabilities: np.ndarray, true: np.ndarray, temperature: float) -> dict[str, Any]:
    """Compare calibration at temperature 1 and at `temperature` on the same faces.

    Returns:
        A JSON-ready dict with `temperature`, `faces`, and `ece`/`nll` before and after scaling.
    """
    scaled = apply_temperature(probabilities, temperature)
    return {
        "temperature": float(temperature),
        "faces": int(len(true)),
        "ece_before": expected_calibration_error(np.asarray(probabilities, dtype=np.float64), true),
        "ece_after": expected_calibration_error(scaled, true),
        "nll_before": negative_log_likelihood(probabilities, true),
        "nll_after": negative_log_likelihood(scaled, true),
    }
