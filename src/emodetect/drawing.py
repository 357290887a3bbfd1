"""Drawing results on images: a box and a "label score" caption per face.

The module is named `drawing` so that `emodetect.annotate` always names the function, not a submodule.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from emodetect.images import to_bgr
from emodetect.results import PipelineResult

LABEL_COLORS_BGR = {
    "happy": (60, 180, 75),
    "sad": (200, 110, 30),
    "angry": (40, 40, 220),
    "disgust": (40, 140, 110),
    "fear": (170, 60, 160),
    "neutral": (160, 160, 160),
    "surprise": (0, 200, 230),
}


def label_color(label: str) -> tuple[int, int, int]:
    """Return the BGR colour for a label: a fixed one for the seven FER labels, a stable hashed one otherwise."""
    if label in LABEL_COLORS_BGR:
        return LABEL_COLORS_BGR[label]
    digest = zlib.crc32(label.encode("utf-8"))
    return (64 + digest % 160, 64 + (digest >> 8) % 160, 64 + (digest >> 16) % 160)


def annotate(image: np.ndarray, result: PipelineResult, copy: bool = True) -> np.ndarray:
    """Draw each face's box and "label score" caption.

    Line width and text size follow the image size, so captions stay readable on large photos.

    Args:
        image: The image the result was computed on: BGR `uint8` `(H, W, 3)`, or any input `load_image`
            accepts (greyscale and BGRA are converted, so they are always drawn on a copy).
        result: The pipeline's result for that image.
        copy: Draw on a copy (default) instead of on `image` itself.

    Returns:
        The annotated BGR `uint8` image.

    Raises:
        ValueError: The image's size differs from the result's `image_size`, or `copy=False` was given
            for an image that cannot be drawn on in place (read-only, a strided view, or not BGR `uint8`).

    Examples:
        >>> import numpy as np
        >>> from emodetect.results import PipelineResult
        >>> result = PipelineResult([[10, 10, 60, 60]], [0.9], [[0.8, 0.2]], ("happy", "sad"), (100, 100))
        >>> bool(annotate(np.zeros((100, 100, 3), np.uint8), result).any())
        True
    """
    if tuple(image.shape[:2]) != tuple(result.image_size):
        raise ValueError(
            f"The image is {image.shape[1]}x{image.shape[0]} but the result was computed on "
            f"{result.image_size[1]}x{result.image_size[0]}; draw on the image that was processed."
        )

    canvas = to_bgr(image)
    if copy and canvas is image:
        canvas = image.copy()
    elif not copy and (canvas is not image or not image.flags.writeable or not image.flags.c_contiguous):
        raise ValueError(
            "copy=False needs a writeable, contiguous BGR uint8 image to draw on in place; "
            f"received dtype {image.dtype}, shape {image.shape}, writeable={image.flags.writeable}, "
            f"contiguous={image.flags.c_contiguous}. Use copy=True."
        )

    thickness = max(1, round(max(image.shape[:2]) / 400))
    font_scale = max(0.4, max(image.shape[:2]) / 1200)
    for box, label, confidence in zip(result.boxes, result.labels, result.confidences):
        x1, y1, x2, y2 = (int(round(value)) for value in box)
        color = label_color(label)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)

        caption = f"{label} {confidence:.2f}"
        (text_width, text_height), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        # Put the caption above the box, or inside its top edge when the box touches the image top.
        top = y1 - text_height - baseline - 2 if y1 - text_height - baseline - 2 >= 0 else y1
        cv2.rectangle(canvas, (x1, top), (x1 + text_width + 4, top + text_height + baseline + 2), color, cv2.FILLED)
        cv2.putText(
            canvas,
            caption,
            (x1 + 2, top + text_height + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )
    return canvas
