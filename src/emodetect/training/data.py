"""Image folders as labelled datasets: listing, splitting once by file, and loading into arrays.

A dataset folder has one sub-folder per class (`happy/`, `sad/`, or any names); the sub-folder name is the
label. Splits are drawn once, over files, from a seeded generator, so the same seed always gives the same
split and no file is in two splits. This avoids the leak of splitting a `tf.data` pipeline that reshuffles on
every pass with `take`/`skip`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from emodetect.errors import DatasetError, ImageReadError
from emodetect.images import IMAGE_SUFFIXES, prepare_faces, read_image

logger = logging.getLogger(__name__)


@dataclass
class FileDataset:
    """Image files with integer labels and the class names those labels index.

    Attributes:
        files: Image paths.
        labels: One label per file, an index into `class_names`.
        class_names: Class names, in label order.
    """

    files: list[Path]
    labels: np.ndarray
    class_names: list[str]

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.files) != len(self.labels):
            raise ValueError(f"Expected one label per file, received {len(self.files)} files and {len(self.labels)} labels.")

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, indices: Sequence[int]) -> "FileDataset":
        """Return the files at `indices`, with the same class names."""
        indices = np.asarray(indices, dtype=np.int64)
        return FileDataset([self.files[index] for index in indices], self.labels[indices], list(self.class_names))

    def class_counts(self) -> dict[str, int]:
        """Return the number of files per class name."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(count) for name, count in zip(self.class_names, counts)}


@dataclass
class ArrayDataset:
    """Preprocessed faces in memory: `x` as returned by `prepare_faces`, `y` integer labels."""

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    files: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)


def list_image_folder(
    root: Union[str, "os.PathLike[str]"],
    class_names: Optional[Sequence[str]] = None,
) -> FileDataset:
    """List the images of a folder whose sub-folders are classes.

    Files whose suffix is not an image suffix are skipped and counted in one warning. Whether each image
    decodes is checked when it is loaded (`load_arrays`), not here.

    Args:
        root: Folder with one sub-folder per class.
        class_names: Classes to take, in label order. Sub-folders not named here are reported and left out.
            By default every sub-folder is a class, in sorted order.

    Returns:
        The files and their labels.

    Raises:
        DatasetError: The folder is missing, has fewer than two classes, or a class has no image.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"Dataset folder not found: '{root}'. Expected a folder with one sub-folder per class.")

    folders = sorted(path.name for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    if class_names is None:
        class_names = folders
    else:
        class_names = list(class_names)
        missing = [name for name in class_names if name not in folders]
        if missing:
            raise DatasetError(
                f"'{root}' has no sub-folder for classes {missing}. Found sub-folders: {folders}."
            )
        extra = [name for name in folders if name not in class_names]
        if extra:
            logger.warning("Leaving out sub-folders of '%s' that are not classes of the model: %s", root, extra)

    if len(class_names) < 2:
        raise DatasetError(
            f"Expected at least two class sub-folders in '{root}', found {len(class_names)}: {list(class_names)}. "
            f"Put each class's images in its own sub-folder, such as happy/ and sad/."
        )

    files: list[Path] = []
    labels: list[int] = []
    skipped: list[Path] = []
    for label, name in enumerate(class_names):
        class_files = []
        for path in sorted((root / name).rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            if path.suffix.lower() in IMAGE_SUFFIXES:
                class_files.append(path)
            else:
                skipped.append(path)
        if not class_files:
            raise DatasetError(f"Class '{name}' has no image files in '{root / name}'.")
        files.extend(class_files)
        labels.extend([label] * len(class_files))

    if skipped:
        _warn_skipped(skipped, "not an image file type")
    return FileDataset(files, np.asarray(labels), list(class_names))


def split_dataset(
    dataset: FileDataset,
    fractions: Sequence[float] = (0.7, 0.2, 0.1),
    seed: int = 0,
) -> list[FileDataset]:
    """Split files once into disjoint parts, stratified by class.

    Each class is shuffled with `seed` and cut in the given proportions, so every part keeps the class
    balance of the whole. The same seed and files always give the same parts.

    Args:
        dataset: The files to split.
        fractions: One fraction per part, summing to 1; the default is train/validation/test 70/20/10.
        seed: Seed of the shuffle.

    Returns:
        One `FileDataset` per fraction.

    Raises:
        ValueError: A fraction is negative or they do not sum to 1.
    """
    fractions = [float(value) for value in fractions]
    if any(value < 0 for value in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"Expected non-negative fractions that sum to 1, received {fractions}.")

    generator = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    boundaries = np.cumsum(fractions)[:-1]
    for label in range(len(dataset.class_names)):
        indices = np.flatnonzero(dataset.labels == label)
        # Sorting first makes the split independent of the order the file system listed the files in.
        indices = indices[np.argsort([str(dataset.files[index]) for index in indices], kind="stable")]
        generator.shuffle(indices)
        cuts = np.rint(boundaries * len(indices)).astype(int)
        for part, chunk in zip(parts, np.split(indices, cuts)):
            part.extend(chunk.tolist())

    return [dataset.subset(sorted(part)) for part in parts]


def load_arrays(
    dataset: FileDataset,
    input_size: tuple[int, int],
    color_mode: str,
    progress: bool = True,
) -> ArrayDataset:
    """Read and preprocess every image of a dataset, skipping files that do not decode.

    Images are taken as face crops already and go through `prepare_faces`, the preprocessing used at
    inference.

    Args:
        dataset: Files and labels.
        input_size: `(height, width)` of the model input.
        color_mode: `"grayscale"` or `"rgb"`.
        progress: Log progress every 2,000 images.

    Returns:
        The preprocessed images and labels of the files that decoded.

    Raises:
        DatasetError: No file decoded.
    """
    images: list[np.ndarray] = []
    labels: list[int] = []
    kept: list[Path] = []
    unreadable: list[Path] = []
    for index, (path, label) in enumerate(zip(dataset.files, dataset.labels)):
        try:
            images.append(read_image(path))
        except ImageReadError:
            unreadable.append(path)
            continue
        labels.append(int(label))
        kept.append(path)
        if progress and (index + 1) % 2000 == 0:
            logger.info("Loaded %d of %d images", index + 1, len(dataset))

    if unreadable:
        _warn_skipped(unreadable, "cannot be decoded")
    if not images:
        raise DatasetError(f"None of the {len(dataset)} files could be read as an image.")

    x = prepare_faces(images, input_size, color_mode)
    return ArrayDataset(x=x, y=np.asarray(labels, dtype=np.int64), class_names=list(dataset.class_names), files=kept)


def _warn_skipped(paths: Sequence[Path], reason: str) -> None:
    shown = ", ".join(f"'{path}'" for path in paths[:10])
    more = f" and {len(paths) - 10} more" if len(paths) > 10 else ""
    logger.warning("Skipped %d files (%s): %s%s", len(paths), reason, shown, more)
