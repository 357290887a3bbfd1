"""Face crops of training images: detect faces, crop them as the pipeline does, and cache the crops.

Training on whole photos teaches a classifier what the pipeline never shows it: the pipeline classifies
crops around detector boxes. `load_face_arrays` runs a detector over each image, cuts the crops with
`emodetect.images.crop_face` and the model's crop margin, and preprocesses them with `prepare_faces`,
the same three steps `emodetect.Pipeline` takes at inference.

Detection is the slow step, so every image's crops are cached on disk, one `.npz` file per image, under a
key made of the detector's settings, the crop margin, and the image's absolute path, size and modification
time. Editing or replacing an image therefore invalidates its entry, and a second run reads the cache
without running the detector.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from emodetect.detectors import Detector, create_detector
from emodetect.errors import ImageReadError
from emodetect.images import crop_face, prepare_faces, read_image
from emodetect.training.data import ArrayDataset, FileDataset, warn_skipped

logger = logging.getLogger(__name__)

FACE_MODES = ("largest", "all")
CACHE_FORMAT = 1
"""Version of the cache entry layout; it is part of every key, so a new layout never reads old entries."""
NO_FACE = "no face found"
"""The reason `load_face_arrays` records for an image in which the detector found no face."""


@dataclass
class ImageFaces:
    """The faces found in one image.

    Attributes:
        boxes: `(N, 4)` `float32` detector boxes `(x1, y1, x2, y2)` in pixels, highest score first.
        scores: `(N,)` detector confidences.
        crops: One BGR `uint8` crop per box, cut by `crop_face` with the margin of the cache entry.
    """

    boxes: np.ndarray
    scores: np.ndarray
    crops: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.crops)

    def largest(self) -> Optional[int]:
        """Return the index of the face with the largest box area, or `None` when there is no face."""
        if not len(self.boxes):
            return None
        areas = (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])
        return int(np.argmax(areas))


def default_cache_dir() -> Path:
    """Return the default crop cache folder, `face-crops` inside the weights cache (`EMODETECT_HOME`)."""
    from emodetect.weights import cache_dir

    return cache_dir() / "face-crops"


def cache_usage(cache_dir: Optional[Union[str, "os.PathLike[str]"]] = None) -> tuple[int, int]:
    """Return the number of entries in the crop cache and their total size in bytes.

    The cache is never pruned. Deleting the folder, or any entry in it, loses nothing: a missing entry is
    rebuilt by running the detector again the next time its image is cropped.

    Args:
        cache_dir: Folder of the cache entries; `default_cache_dir()` when `None`. A missing folder has
            no entries.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if not folder.is_dir():
        return 0, 0
    sizes = [entry.stat().st_size for entry in folder.glob("*.npz") if entry.is_file()]
    return len(sizes), sum(sizes)


class FaceCropCache:
    """Detects faces in images and caches their crops on disk.

    Args:
        detector: A `Detector`, or a registered detector name built with `create_detector`.
        crop_margin: Context added around each box on each side, as a fraction of the box side. Pass the
            `crop_margin` of the model the crops are for.
        cache_dir: Folder of the cache entries; `default_cache_dir()` when `None`.
        confidence_threshold: Detector threshold in [0, 1] when `detector` is a name; the backend's
            default (0.5 for both OpenCV backends) when `None`.

    Raises:
        ValueError: `crop_margin` is negative, or a threshold is given with a `Detector` instance.
        UnknownBackendError: The detector name is not registered.
        WeightsError: The detector's weights cannot be had.
    """

    def __init__(
        self,
        detector: Union[str, Detector] = "ssd",
        crop_margin: float = 0.0,
        cache_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
        confidence_threshold: Optional[float] = None,
    ) -> None:
        if crop_margin < 0:
            raise ValueError(f"Expected crop_margin >= 0, received {crop_margin}.")
        if isinstance(detector, Detector) and confidence_threshold is not None:
            raise ValueError("confidence_threshold applies to a detector name; set it on your Detector instead.")

        if isinstance(detector, Detector):
            self.detector = detector
        else:
            options = {} if confidence_threshold is None else {"confidence_threshold": confidence_threshold}
            self.detector = create_detector(detector, **options)
        self.crop_margin = float(crop_margin)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0

    def settings(self) -> dict[str, object]:
        """Return the settings that change the crops; they are hashed into every cache key."""
        # repr() of the built-in detectors lists their thresholds, so two thresholds never share entries.
        # NOTE: a custom Detector whose repr() omits its settings shares entries across those settings.
        # Give it a repr() that lists them, or a cache_dir of its own.
        return {
            "format": CACHE_FORMAT,
            "detector": f"{type(self.detector).__module__}.{self.detector!r}",
            "crop_margin": self.crop_margin,
        }

    def cache_path(self, image_path: Union[str, "os.PathLike[str]"]) -> Path:
        """Return the cache entry of an image file (which may not exist yet).

        Raises:
            FileNotFoundError: The image file does not exist.
        """
        path = Path(image_path).resolve()
        stat = path.stat()
        key = json.dumps(
            {**self.settings(), "file": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
            sort_keys=True,
        )
        return self.cache_dir / f"{hashlib.sha256(key.encode('utf-8')).hexdigest()}.npz"

    def faces(self, image_path: Union[str, "os.PathLike[str]"]) -> ImageFaces:
        """Return the faces of an image file, from the cache or by running the detector.

        Args:
            image_path: An image file; it is read as BGR `uint8`.

        Returns:
            The boxes, scores and crops; no boxes when the detector finds no face.

        Raises:
            ImageReadError: The file is missing or cannot be decoded.
        """
        try:
            entry = self.cache_path(image_path)
        except OSError as error:
            raise ImageReadError(f"Cannot read image file '{image_path}': {error.strerror or error}.") from None

        cached = _read_entry(entry)
        if cached is not None:
            self.hits += 1
            return cached

        image = read_image(image_path)
        detections = self.detector.detect(image)
        crops = [crop_face(image, box, self.crop_margin) for box in detections.boxes]
        found = ImageFaces(boxes=detections.boxes, scores=detections.scores, crops=crops)
        _write_entry(entry, found)
        self.misses += 1
        return found


def load_face_arrays(
    dataset: FileDataset,
    input_size: tuple[int, int],
    color_mode: str,
    cropper: FaceCropCache,
    faces: str = "largest",
    report: bool = True,
) -> ArrayDataset:
    """Detect the faces of every image of a dataset and preprocess the crops for a model.

    Each crop gets the label of its image. Images that do not decode and images without a face are left
    out and recorded in `ArrayDataset.skipped` with the reason.

    Args:
        dataset: Image files and labels, usually one part of `split_dataset`. Split before calling this,
            so that all faces of one photo land in the same part.
        input_size: `(height, width)` of the model input.
        color_mode: `"grayscale"` or `"rgb"`.
        cropper: Detector, crop margin and cache.
        faces: `"largest"` keeps the face with the largest box of each image, `"all"` keeps every face.
        report: Log one warning listing the images without a face and one listing the files that do not
            decode.

    Returns:
        One row per face crop; `files` gives each row's source image.

    Raises:
        ValueError: `faces` is not `"largest"` or `"all"`.
    """
    if faces not in FACE_MODES:
        raise ValueError(f"Expected faces in {FACE_MODES}, received {faces!r}.")

    rows: list[np.ndarray] = []
    labels: list[int] = []
    sources: list[Path] = []
    skipped: dict[Path, str] = {}
    for index, (path, label) in enumerate(zip(dataset.files, dataset.labels), start=1):
        try:
            found = cropper.faces(path)
        except ImageReadError as error:
            skipped[path] = f"cannot be decoded: {error}"
            continue

        if not len(found):
            skipped[path] = NO_FACE
            continue
        crops = found.crops if faces == "all" else [found.crops[found.largest()]]
        rows.append(prepare_faces(crops, input_size, color_mode))
        labels.extend([int(label)] * len(crops))
        sources.extend([path] * len(crops))
        if index % 100 == 0:
            logger.info("Face crops: %d of %d images done (%d from the cache)", index, len(dataset), cropper.hits)

    if report:
        warn_no_face(skipped)
        warn_skipped({path: reason for path, reason in skipped.items() if reason != NO_FACE})

    channels = 1 if color_mode == "grayscale" else 3
    x = np.concatenate(rows) if rows else np.zeros((0, *input_size, channels), dtype=np.float32)
    logger.info(
        "Face crops: %d faces from %d images, %d images without a face, detector %r (%d images from the cache)",
        len(x),
        len(dataset),
        sum(reason == NO_FACE for reason in skipped.values()),
        cropper.detector,
        cropper.hits,
    )
    return ArrayDataset(
        x=x,
        y=np.asarray(labels, dtype=np.int64),
        class_names=list(dataset.class_names),
        files=sources,
        skipped=skipped,
    )


def warn_no_face(skipped: Mapping[Path, str]) -> None:
    """Log one warning that counts and lists the images without a face (nothing when there are none)."""
    paths = [path for path, reason in skipped.items() if reason == NO_FACE]
    if not paths:
        return
    shown = ", ".join(f"'{path}'" for path in paths[:20])
    more = f" and {len(paths) - 20} more" if len(paths) > 20 else ""
    logger.warning("The detector found no face in %d images, which are left out: %s%s", len(paths), shown, more)


def _read_entry(entry: Path) -> Optional[ImageFaces]:
    if not entry.is_file():
        return None
    try:
        with np.load(entry) as stored:
            boxes = stored["boxes"]
            scores = stored["scores"]
            crops = [_decode_png(stored[f"crop_{index}"]) for index in range(len(boxes))]
    except (OSError, KeyError, ValueError) as error:
        # A damaged entry (an interrupted write on another system, a full disk) is rebuilt, not trusted.
        logger.warning("Ignoring damaged face-crop cache entry %s: %s", entry, error)
        return None
    return ImageFaces(boxes=boxes, scores=scores, crops=crops)


def _write_entry(entry: Path, found: ImageFaces) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"boxes": found.boxes, "scores": found.scores}
    for index, crop in enumerate(found.crops):
        # PNG is lossless, so a cached crop is bit-identical to the one the pipeline would cut.
        ok, encoded = cv2.imencode(".png", crop)
        if not ok:
            raise ImageReadError(f"OpenCV cannot encode a face crop of shape {crop.shape} as PNG.")
        arrays[f"crop_{index}"] = encoded.reshape(-1)

    # Writing to a temporary name and renaming keeps readers from ever seeing half an entry.
    handle, temporary = tempfile.mkstemp(suffix=".npz", dir=entry.parent, prefix=".crops-")
    os.close(handle)
    try:
        np.savez(temporary, **arrays)
        os.replace(temporary, entry)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _decode_png(data: np.ndarray) -> np.ndarray:
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("a cached crop is not a valid PNG")
    return image
