"""The examples in the public modules' docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "emodetect.classifiers.base",
    "emodetect.classifiers.opencv_net",
    "emodetect.detectors.base",
    "emodetect.drawing",
    "emodetect.images",
    "emodetect.metrics",
    "emodetect.pipeline",
    "emodetect.results",
    "emodetect.stream",
    "emodetect.tracking",
    "emodetect.training.data",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)

    outcome = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)

    assert outcome.attempted > 0
    assert outcome.failed == 0
