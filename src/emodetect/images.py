"""Image reading, face cropping and the preprocessing shared by training and inference.

Colour convention: every image that enters or leaves this module is a NumPy array of dtype `uint8`
in OpenCV's **BGR** channel order, shape `(height, width, 3)`, values 0-255. Greyscale and BGRA input
is accepted and converted to BGR by `to_bgr`.

`prepare_faces` is the one function that turns face crops into classifier input. Training
(`emodetect.training`) and inference (`emodetect.classifiers`) both call it, so the two cannot drift apart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from emodetect.errors import ImageReadError

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".jp2", ".pgm", ".ppm"}
)
"""File suffixes (lower case) that folder readers treat as images."""

_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"


def resolve_path(path: Path) -> Path:
    """Return the absolute path of `path` with links resolved, or only made absolute for a link loop.

    `Path.resolve` raises on a symbolic link that points to itself. Callers compare paths to tell whether
    two names mean one file, and a loop is no file at all, so its absolute name is enough.
    """
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return path.absolute()


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file into a BGR `uint8` array.

    Greyscale, BGRA and 16-bit files are converted to 8-bit BGR (alpha is dropped). The file is read as
    bytes first, so paths with non-ASCII characters work on every platform.

    Args:
        path: Path of a JPEG, PNG, BMP, WebP or TIFF file.

    Returns:
        Array of shape `(height, width, 3)`, dtype `uint8`, BGR order.

    Raises:
        ImageReadError: The file is missing, empty, truncated, or not an image OpenCV can decode.

    Examples:
        >>> import cv2, numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "grey.png")
        >>> _ = cv2.imwrite(path, np.zeros((4, 6), np.uint8))
        >>> read_image(path).shape
        (4, 6, 3)
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"Image file not found: '{path}'.") from None
    except IsADirectoryError:
        raise ImageReadError(f"Expected an image file, received a folder: '{path}'.") from None
    except OSError as error:
        raise ImageReadError(f"Cannot read image file '{path}': {error.strerror or error}.") from None

    return decode_image(data, source=str(path))


def decode_image(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, ...) into a BGR `uint8` array.

    Args:
        data: The encoded file content.
        source: Name used in error messages, usually the file path.

    Returns:
        Array of shape `(height, width, 3)`, dtype `uint8`, BGR order.

    Raises:
        ImageReadError: The bytes are empty, a truncated JPEG, or not a format OpenCV can decode.
    """
    if not data:
        raise ImageReadError(f"Image file '{source}' is empty (0 bytes).")

    # A JPEG cut off before its end-of-image marker may decode with its missing rows filled with grey, and a
    # face classified from such pixels is silently wrong. Data after the marker (motion photos append a video)
    # is fine, so the whole buffer is searched.
    if data.startswith(_JPEG_START) and _JPEG_END not in data:
        raise ImageReadError(
            f"Image file '{source}' is a truncated JPEG (no end-of-image marker); re-download or re-export it."
        )

    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        # IMREAD_COLOR applies the EXIF orientation tag, so phone photos come out upright; IMREAD_ANYDEPTH keeps
        # 16-bit files exact until to_bgr scales them. Alpha is dropped.
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error as error:
        raise ImageReadError(
            f"Cannot decode '{source}': {error.err or error}. Images over OpenCV's pixel limit need the "
            f"environment variable OPENCV_IO_MAX_IMAGE_PIXELS raised before Python starts."
        ) from None
    if image is None:
        raise ImageReadError(
            f"Cannot decode '{source}' as an image ({len(data)} bytes, starts with {data[:8]!r}). "
            f"Expected a JPEG, PNG, BMP, GIF, WebP or TIFF file."
        )

    return to_bgr(image, source=source)


def to_bgr(image: np.ndarray, source: str = "<array>") -> np.ndarray:
    """Convert a greyscale, BGR or BGRA array of any OpenCV depth to 8-bit BGR.

    Args:
        image: Array of shape `(H, W)`, `(H, W, 1)`, `(H, W, 3)` (BGR) or `(H, W, 4)` (BGRA). `uint8` is
            taken as 0-255, `uint16` as 0-65535, floating point as 0.0-1.0 and `bool` as black and white.
        source: Name used in error messages.

    Returns:
        A `uint8` BGR array of shape `(H, W, 3)`. The input is returned unchanged when it already is one.

    Raises:
        ImageReadError: The array has no pixels, a shape that is not an image, or floating-point values
            above 1.0.
    """
    if not isinstance(image, np.ndarray):
        raise ImageReadError(f"Expected a NumPy array for {source}, received {type(image).__name__}.")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ImageReadError(
            f"Expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) for {source}, "
            f"received shape {image.shape}."
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageReadError(f"Image {source} has no pixels (shape {image.shape}).")

    if image.dtype != np.uint8:
        image = _to_uint8(image, source)

    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _to_uint8(image: np.ndarray, source: str) -> np.ndarray:
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.floating):
        # A float image in 0-255 would otherwise turn almost white and hide every face.
        peak = float(np.nanmax(image))
        if peak > 1.0:
            raise ImageReadError(
                f"Expected floating-point pixels in 0.0-1.0 for {source}, received values up to {peak:g}. "
                f"Convert 0-255 images with image.astype(np.uint8) or divide them by 255."
            )
        return np.clip(np.rint(np.nan_to_num(image) * 255.0), 0, 255).astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer):
        return np.clip(image, 0, 255).astype(np.uint8)
    raise ImageReadError(f"Unsupported pixel type {image.dtype} for {source}; expected uint8, uint16 or float.")


def load_image(image: Union[PathLike, np.ndarray]) -> np.ndarray:
    """Return a BGR `uint8` image from a path or an array.

    Args:
        image: A file path, or an array as accepted by `to_bgr` (BGR order, not RGB).

    Returns:
        Array of shape `(H, W, 3)`, dtype `uint8`, BGR order.

    Raises:
        ImageReadError: The file or array is not a usable image.
    """
    if isinstance(image, np.ndarray):
        return to_bgr(image)
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if image is None:
        raise ImageReadError(
            "Expected a file path or a NumPy array, received None. cv2.imread returns None for a file it cannot "
            "read: check that path, or pass the path itself for a clearer error."
        )
    raise ImageReadError(f"Expected a file path or a NumPy array, received {type(image).__name__}.")


def crop_face(image: np.ndarray, box: Sequence[float], margin: float = 0.0) -> np.ndarray:
    """Cut a square face crop around a box, padding with edge pixels where it leaves the image.

    The crop is centred on the box, its side is the box's longer side times `1 + 2 * margin`, so the
    face keeps its aspect ratio when the crop is later resized to the square classifier input.

    Args:
        image: BGR or greyscale `uint8` array.
        box: `(x1, y1, x2, y2)` in pixels, `x2 > x1` and `y2 > y1`.
        margin: Extra context added on each side, as a fraction of the box side (0.1 adds 10%).

    Returns:
        A square array with the same dtype and channels as `image`.

    Raises:
        ValueError: The box has no area, lies outside the image, or the margin is negative.
    """
    x1, y1, x2, y2 = (float(value) for value in box)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"Expected a box with x2 > x1 and y2 > y1, received {tuple(box)}.")
    if margin < 0:
        raise ValueError(f"Expected a margin >= 0, received {margin}.")

    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    centre_x, centre_y = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    left = int(round(centre_x - side / 2.0))
    top = int(round(centre_y - side / 2.0))
    size = max(1, int(round(side)))

    height, width = image.shape[:2]
    rows = (min(max(top, 0), height), min(max(top + size, 0), height))
    columns = (min(max(left, 0), width), min(max(left + size, 0), width))
    if rows[1] <= rows[0] or columns[1] <= columns[0]:
        raise ValueError(f"The box {tuple(box)} lies outside the {width}x{height} image.")

    crop = image[rows[0] : rows[1], columns[0] : columns[1]]
    # Padding with edge pixels keeps faces at the image border square instead of squashing them.
    padding = (rows[0] - top, top + size - rows[1], columns[0] - left, left + size - columns[1])
    if any(padding):
        crop = cv2.copyMakeBorder(crop, *padding, cv2.BORDER_REPLICATE)
    return crop


def prepare_faces(
    faces: Sequence[np.ndarray],
    size: tuple[int, int],
    color_mode: str = "grayscale",
) -> np.ndarray:
    """Turn face crops into one classifier input batch.

    This is the single preprocessing step used for training and for inference. Pixel values stay in
    0-255 because every emodetect model rescales inside its first layer, so the saved model carries its
    own normalisation.

    Args:
        faces: A list of face crops, each greyscale `(H, W)` / `(H, W, 1)`, BGR `(H, W, 3)` or BGRA
            `(H, W, 4)`. `uint8` crops are taken as 0-255; other pixel types are converted as `to_bgr`
            converts them (`uint16` as 0-65535, floating point as 0.0-1.0).
        size: `(height, width)` of the model input.
        color_mode: `"grayscale"` for one channel or `"rgb"` for three channels in RGB order (the order
            Keras models are usually trained in).

    Returns:
        `float32` array of shape `(N, height, width, C)` with values 0-255, `C` = 1 or 3.

    Raises:
        ValueError: `color_mode` is not `"grayscale"` or `"rgb"`.
        ImageReadError: `faces` is one array instead of a list, or a crop is not an image array, is empty,
            or has floating-point values above 1.0. It is also a `ValueError`.
    """
    if color_mode not in ("grayscale", "rgb"):
        raise ValueError(f"Expected color_mode 'grayscale' or 'rgb', received {color_mode!r}.")
    check_face_list(faces)

    height, width = int(size[0]), int(size[1])
    channels = 1 if color_mode == "grayscale" else 3
    batch = np.empty((len(faces), height, width, channels), dtype=np.float32)

    for index, face in enumerate(faces):
        face = _check_face(face, index)

        is_grey = face.ndim == 2 or face.shape[2] == 1
        if color_mode == "grayscale":
            face = face.reshape(face.shape[:2]) if is_grey else cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
        else:
            face = cv2.cvtColor(face.reshape(face.shape[:2]), cv2.COLOR_GRAY2RGB) if is_grey else face[..., ::-1]

        # INTER_AREA averages when shrinking, which avoids aliasing; it equals bilinear when enlarging.
        resized = cv2.resize(face, (width, height), interpolation=cv2.INTER_AREA)
        batch[index] = resized.reshape(height, width, channels)

    return batch


def check_face_list(faces: object) -> None:
    """Raise `ImageReadError` when `faces` is not a list (or stacked array) of face crops.

    Iterating one crop would classify each of its pixel rows as a face, and a path or `None` is no list.
    An array of shape `(N, H, W)` or `(N, H, W, C)` is taken as N stacked crops, unless its last axis has
    1, 3 or 4 channels and it has three axes, which is one crop.
    """
    one_crop = isinstance(faces, np.ndarray) and (faces.ndim == 2 or (faces.ndim == 3 and faces.shape[2] in (1, 3, 4)))
    if one_crop:
        raise ImageReadError(
            f"Expected a list of face crops, received one array of shape {faces.shape}. Wrap one crop in a "
            f"list: [face]."
        )
    if faces is None or isinstance(faces, (str, bytes, os.PathLike)) or not isinstance(faces, (Sequence, np.ndarray)):
        raise ImageReadError(
            f"Expected a list of face crops (NumPy arrays), received {type(faces).__name__}. Read image files "
            f"with emodetect.load_image first."
        )


def _check_face(face: np.ndarray, index: int) -> np.ndarray:
    """Return a face crop as a `uint8` greyscale or BGR array, or raise `ImageReadError` naming the crop."""
    source = f"face crop {index}"
    if not isinstance(face, np.ndarray):
        raise ImageReadError(f"Expected a NumPy array for {source}, received {type(face).__name__}.")
    if face.ndim not in (2, 3) or (face.ndim == 3 and face.shape[2] not in (1, 3, 4)):
        raise ImageReadError(
            f"Expected {source} of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), received shape {face.shape}."
        )
    if face.size == 0:
        raise ImageReadError(f"Face crop {index} is empty (shape {face.shape}).")

    if face.dtype != np.uint8:
        face = _to_uint8(face, source)
    if face.ndim == 3 and face.shape[2] == 4:
        face = cv2.cvtColor(face, cv2.COLOR_BGRA2BGR)
    return face
