"""McNemar's exact test on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from emodetect.metrics import mcnemar_test


def test_mcnemar_counts_discordant_samples():
    true = np.array([0, 0, 1, 1, 0, 1])
    first = np.array([0, 1, 1, 0, 1, 1])
    second = np.array([0, 0, 1, 1, 1, 0])

    result = mcnemar_test(true, first, second)

    assert result["only_a_correct"] == 1
    assert result["only_b_correct"] == 2


def test_mcnemar_one_sided_nine_is_significant():
    true = np.zeros(20, dtype=int)
    before = np.r_[np.ones(9, dtype=int), np.zeros(11, dtype=int)]

    result = mcnemar_test(true, before, true)

    # Nine discordant samples, all favouring the second classifier: p = 2 * 0.5**9.
    assert result["p_value"] == pytest.approx(2 * 0.5**9)


def test_mcnemar_balanced_disagreement_is_one():
    true = np.array([0, 0, 0, 0])
    first = np.array([0, 1, 0, 1])
    second = np.array([1, 0, 1, 0])

    assert mcnemar_test(true, first, second)["p_value"] == 1.0


def test_mcnemar_seven_to_two():
    true = np.zeros(9, dtype=int)
    first = np.r_[np.ones(7, dtype=int), np.zeros(2, dtype=int)]
    second = np.r_[np.zeros(7, dtype=int), np.ones(2, dtype=int)]

    # Two-sided binomial tail: 2 * (1 + 9 + 36) / 2**9.
    assert mcnemar_test(true, first, second)["p_value"] == pytest.approx(2 * 46 / 512)


def test_mcnemar_identical_predictions_give_one():
    labels = np.array([0, 1, 1])

    assert mcnemar_test(labels, labels, labels)["p_value"] == 1.0


def test_mcnemar_rejects_length_mismatch():
    with pytest.raises(ValueError, match="same length"):
        mcnemar_test(np.zeros(3), np.zeros(3), np.zeros(2))


def test_mcnemar_thousands_of_discordant_samples():
    true = np.zeros(1100, dtype=int)
    first = np.r_[np.zeros(550, dtype=int), np.ones(550, dtype=int)]

    result = mcnemar_test(true, first, 1 - first)

    assert result["only_a_correct"] == 550
    assert result["only_b_correct"] == 550
    assert result["p_value"] == pytest.approx(1.0)


def test_mcnemar_large_uneven_counts():
    true = np.zeros(1000, dtype=int)
    first = np.r_[np.zeros(550, dtype=int), np.ones(450, dtype=int)]

    # 550 against 450: the two-sided exact binomial p-value, 0.0017 to two figures (SciPy's binomtest).
    assert mcnemar_test(true, first, 1 - first)["p_value"] == pytest.approx(0.00173, abs=5e-5)
