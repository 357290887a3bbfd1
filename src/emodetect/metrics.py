"""Classification metrics in plain NumPy: accuracy, per-class precision/recall/F1, confusion matrix, calibration,
and McNemar's test for two classifiers on the same samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Return the `(num_classes, num_classes)` count matrix: rows are true classes, columns predicted ones."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def expected_calibration_error(probabilities: np.ndarray, true: np.ndarray, bins: int = 15) -> float:
    """Return the expected calibration error of the top-class probability, over equal-width bins.

    It is the mean, weighted by the share of samples in each bin, of |accuracy - mean confidence|.
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == true
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def mcnemar_test(true: np.ndarray, predicted_a: np.ndarray, predicted_b: np.ndarray) -> dict[str, Any]:
    """Compare two classifiers on the same samples with McNemar's exact test.

    Only the samples that exactly one of the two classifies correctly carry information. Under the null
    hypothesis that both are equally accurate, each such sample is equally likely to favour either, so the
    count that favours `b` follows a binomial distribution with p = 0.5. The p-value is two-sided.

    Args:
        true: Integer labels.
        predicted_a: Labels predicted by the first classifier.
        predicted_b: Labels predicted by the second classifier.

    Returns:
        `only_a_correct`, `only_b_correct` and `p_value` (1.0 when no sample separates them).

    Raises:
        ValueError: The three arrays differ in length.

    Examples:
        >>> mcnemar_test(np.array([0, 1, 1, 0]), np.array([1, 0, 1, 0]), np.array([0, 1, 1, 0]))
        {'only_a_correct': 0, 'only_b_correct': 2, 'p_value': 0.5}
    """
    true, predicted_a, predicted_b = (np.asarray(array).reshape(-1) for array in (true, predicted_a, predicted_b))
    if not len(true) == len(predicted_a) == len(predicted_b):
        raise ValueError(
            f"Expected three arrays of the same length, received {len(true)}, {len(predicted_a)} and {len(predicted_b)}."
        )

    correct_a = predicted_a == true
    correct_b = predicted_b == true
    only_a = int(np.sum(correct_a & ~correct_b))
    only_b = int(np.sum(correct_b & ~correct_a))
    discordant = only_a + only_b
    # The binomial terms are summed in log space, because 2**n overflows a float beyond n = 1023.
    log_terms = [
        math.lgamma(discordant + 1) - math.lgamma(count + 1) - math.lgamma(discordant - count + 1) - discordant * math.log(2.0)
        for count in range(min(only_a, only_b) + 1)
    ]
    largest = max(log_terms)
    tail = math.exp(largest) * sum(math.exp(term - largest) for term in log_terms)
    return {"only_a_correct": only_a, "only_b_correct": only_b, "p_value": min(1.0, 2.0 * tail)}


def classification_report(
    true: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
) -> dict[str, Any]:
    """Compute the metrics emodetect reports for a classifier.

    Args:
        true: Integer labels, indices into `class_names`.
        probabilities: `(N, K)` predicted probabilities in the same class order.
        class_names: The `K` class names.

    Returns:
        A JSON-ready dict with `count`, `accuracy`, `balanced_accuracy` (mean recall over classes that have
        samples), `macro_f1`, `expected_calibration_error`, `per_class` (precision, recall, F1 and support
        per class name), `confusion_matrix` (rows true, columns predicted) and `class_names`.

    Raises:
        ValueError: The shapes of `true` and `probabilities` do not match `class_names`.
    """
    true = np.asarray(true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    num_classes = len(class_names)
    if probabilities.ndim != 2 or probabilities.shape != (len(true), num_classes):
        raise ValueError(
            f"Expected probabilities of shape ({len(true)}, {num_classes}), received {probabilities.shape}."
        )

    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(true, predicted, num_classes)
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    hits = np.diag(matrix)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, hits / np.maximum(predicted_count, 1), 0.0)
        recall = np.where(support > 0, hits / np.maximum(support, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)

    present = support > 0
    return {
        "count": int(len(true)),
        "accuracy": float(hits.sum() / max(len(true), 1)),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "expected_calibration_error": expected_calibration_error(probabilities, true) if len(true) else 0.0,
        "per_class": {
            name: {
                "precision": float(precision[index]),
                "recall": float(recall[index]),
                "f1": float(f1[index]),
                "support": int(support[index]),
            }
            for index, name in enumerate(class_names)
        },
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
    }
