"""Exceptions raised by emodetect.

Every error the library raises on purpose derives from `EmodetectError`, so a caller can catch them all
with one clause and still let programming errors (`TypeError` from a wrong call, for example) through.
"""

from __future__ import annotations


class EmodetectError(Exception):
    """Base class of every error emodetect raises on purpose."""


class ImageReadError(EmodetectError, ValueError):
    """An image file or array cannot be read or is not a usable image."""


class WeightsError(EmodetectError, RuntimeError):
    """A weights file is missing, cannot be downloaded, or fails its hash check."""


class UnknownBackendError(EmodetectError, KeyError):
    """A detector, classifier or architecture name is not registered."""

    def __str__(self) -> str:
        # KeyError quotes its message with repr(); a plain message reads better.
        return str(self.args[0]) if self.args else ""


class ModelNotFoundError(EmodetectError, FileNotFoundError):
    """A model file does not exist."""


class ModelFormatError(EmodetectError, ValueError):
    """A saved model lacks the metadata emodetect needs, or the metadata is invalid."""


class DatasetError(EmodetectError, ValueError):
    """A folder of training or evaluation images is empty, has one class, or cannot be read."""
