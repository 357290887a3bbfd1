"""Temperature scaling: fitting, applying and summarising."""

from __future__ import annotations

import numpy as np
import pytest

from emodetect.calibration import apply_temperature, calibration_summary, fit_temperature
from emodetect.classifiers.keras_model import outputs_to_probabilities
from emodetect.model_io import ModelMetadata


def _overconfident_sample(seed=0, count=4000, temperature=3.0):
    # Labels are drawn from softmax(logits); the reported probabilities are softmax(temperature * logits),
    # so dividing their logits by `temperature` recovers the true probabilities.
    generator = np.random.default_rng(seed)
    logits = generator.normal(size=(count, 3))
    true_probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([generator.choice(3, p=row) for row in true_probabilities])
    reported = np.exp(temperature * logits)
    return reported / reported.sum(axis=1, keepdims=True), labels


def test_fit_recovers_known_temperature():
    probabilities, labels = _overconfident_sample()

    assert fit_temperature(probabilities, labels) == pytest.approx(3.0, rel=0.15)


def test_scaling_keeps_predicted_class():
    probabilities, _ = _overconfident_sample(count=200)

    scaled = apply_temperature(probabilities, 2.5)

    np.testing.assert_array_equal(scaled.argmax(axis=1), probabilities.argmax(axis=1))
    np.testing.assert_allclose(scaled.sum(axis=1), 1.0)


def test_temperature_one_is_identity():
    probabilities, _ = _overconfident_sample(count=50)

    np.testing.assert_allclose(apply_temperature(probabilities, 1.0), probabilities, atol=1e-9)


def test_summary_shows_lower_error_after_fit():
    probabilities, labels = _overconfident_sample()

    summary = calibration_summary(probabilities, labels, fit_temperature(probabilities, labels))

    assert summary["ece_after"] < summary["ece_before"]
    assert summary["nll_after"] < summary["nll_before"]


def test_inference_applies_same_temperature():
    probabilities, _ = _overconfident_sample(count=20)
    metadata = ModelMetadata(class_names=["a", "b", "c"], input_size=(48, 48), temperature=2.0)

    np.testing.assert_allclose(outputs_to_probabilities(probabilities, metadata), apply_temperature(probabilities, 2.0), atol=1e-5)


def test_fit_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(np.full((4, 2), 0.5), np.zeros(3, dtype=int))


def test_apply_rejects_non_positive_temperature():
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(np.full((1, 2), 0.5), 0.0)
