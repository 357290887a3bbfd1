"""Image folders as labelled datasets: listing, splitting once by file, and loading into arrays.

A dataset folder has one sub-folder per class (`happy/`, `sad/`, or any names); the sub-folder name is the
label. Splits are drawn once, over files, from a seeded generator, so the same seed always gives the same
split and no file is in two splits. This avoids the leak of splitting a `tf.data` pipeline that reshuffles on
every pass with `take`/`skip`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import cv2
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
        skipped: Files of the class folders that were left out, each with the reason. `subset` does not
            copy it, so a split reports each skipped file once, on the listing it came from.
    """

    files: list[Path]
    labels: np.ndarray
    class_names: list[str]
    skipped: dict[Path, str] = field(default_factory=dict)

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
    """Preprocessed faces in memory.

    Attributes:
        x: `float32` batch as returned by `prepare_faces`, values 0-255.
        y: Integer labels, indices into `class_names`.
        class_names: Class names, in label order.
        files: The source image of each row of `x`. A photo with several faces appears once per face.
        skipped: Files left out while loading, each with the reason (cannot be decoded, no face found).
    """

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    files: list[Path] = field(default_factory=list)
    skipped: dict[Path, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def class_counts(self) -> dict[str, int]:
        """Return the number of rows per class name."""
        counts = np.bincount(self.y, minlength=len(self.class_names))
        return {name: int(count) for name, count in zip(self.class_names, counts)}

    @classmethod
    def concatenate(cls, parts: Sequence["ArrayDataset"]) -> "ArrayDataset":
        """Join datasets with the same class names into one, rows in order.

        Raises:
            ValueError: `parts` is empty or their class names differ.
        """
        if not parts:
            raise ValueError("Expected at least one ArrayDataset to concatenate, received none.")
        names = [list(part.class_names) for part in parts]
        if any(part_names != names[0] for part_names in names):
            raise ValueError(f"Expected datasets with the same class names, received {names}.")

        skipped: dict[Path, str] = {}
        for part in parts:
            skipped.update(part.skipped)
        return cls(
            x=np.concatenate([part.x for part in parts]),
            y=np.concatenate([part.y for part in parts]),
            class_names=names[0],
            files=[path for part in parts for path in part.files],
            skipped=skipped,
        )


def list_image_folder(
    root: Union[str, "os.PathLike[str]"],
    class_names: Optional[Sequence[str]] = None,
    min_classes: int = 2,
    report: bool = True,
) -> FileDataset:
    """List the images of a folder whose sub-folders are classes.

    Files whose suffix is not an image suffix are skipped, recorded in `FileDataset.skipped` and listed in
    one warning. Whether each image decodes is checked when it is loaded (`load_arrays`), not here.

    Args:
        root: Folder with one sub-folder per class.
        class_names: Classes to take, in label order. Sub-folders not named here are reported and left out.
            By default every sub-folder is a class, in sorted order.
        min_classes: Minimum number of classes. Training needs 2. Evaluating a model on a folder that
            contains only some of its classes may pass 1.
        report: Log the warning about skipped files. Callers that merge several reports into one warning
            pass `False` and read `FileDataset.skipped`.

    Returns:
        The files and their labels.

    Raises:
        DatasetError: The folder is missing, has fewer than `min_classes` classes, or a class has no image.
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

    if len(class_names) < min_classes:
        raise DatasetError(
            f"Expected at least {min_classes} class sub-folders in '{root}', found {len(class_names)}: "
            f"{list(class_names)}. Put each class's images in its own sub-folder, such as happy/ and sad/."
        )

    files: list[Path] = []
    labels: list[int] = []
    skipped: dict[Path, str] = {}
    for label, name in enumerate(class_names):
        class_files = []
        for path in sorted((root / name).rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            if path.suffix.lower() in IMAGE_SUFFIXES:
                class_files.append(path)
            else:
                skipped[path] = "not an image file type"
        if not class_files:
            raise DatasetError(
                f"Class '{name}' has no image files in '{root / name}'. Expected files ending with one of "
                f"{sorted(IMAGE_SUFFIXES)}; add images or remove the folder."
            )
        files.extend(class_files)
        labels.extend([label] * len(class_files))

    if report:
        warn_skipped(skipped)
    return FileDataset(files, np.asarray(labels), list(class_names), skipped=skipped)


def split_dataset(
    dataset: FileDataset,
    fractions: Sequence[float] = (0.7, 0.2, 0.1),
    seed: int = 0,
    groups: Optional[Sequence[int]] = None,
) -> list[FileDataset]:
    """Split files once into disjoint parts, stratified by class.

    Each class is shuffled with `seed` and cut in the given proportions, so every part keeps the class
    balance of the whole. The same seed and files always give the same parts. The classes are shuffled in
    the sorted order of their names, not in label order, so evaluating a model whose class order differs
    from the folder's sorted order finds the same test files. A split of the same folder with fewer
    classes differs, because the classes share one generator.

    With `groups`, such as `duplicate_groups` returns, the files of one group stay in one part, so one
    picture saved twice is never both trained on and tested. A group counts for the class of its first
    file in path order. It goes to the part in which the middle of its files falls in the shuffled order,
    so the parts' sizes come out close to the fractions but not exact.

    Args:
        dataset: The files to split.
        fractions: One fraction per part, summing to 1; the default is train/validation/test 70/20/10.
        seed: Seed of the shuffle.
        groups: One group id per file; `None` puts every file in a group of its own.

    Returns:
        One `FileDataset` per fraction.

    Raises:
        ValueError: A fraction is negative, they do not sum to 1, or `groups` has the wrong length.

    Examples:
        >>> files = FileDataset([Path(f"{index}.png") for index in range(10)], [0] * 6 + [1] * 4, ["a", "b"])
        >>> [len(part) for part in split_dataset(files, (0.5, 0.5))]
        [5, 5]
        >>> groups = [0, 0, 0, 1, 2, 3, 4, 4, 5, 6]  # files 0-2 show one picture, and so do 6 and 7
        >>> parts = split_dataset(files, (0.5, 0.5), groups=groups)
        >>> [sorted(int(path.stem) for path in part.files) for part in parts]
        [[0, 1, 2, 4, 8, 9], [3, 5, 6, 7]]
    """
    fractions = [float(value) for value in fractions]
    if any(value < 0 for value in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"Expected non-negative fractions that sum to 1, received {fractions}.")
    members = _group_members(dataset, groups)

    generator = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    boundaries = np.cumsum(fractions)[:-1]
    # With the default sorted class names this is also the label order, the order in which the shipped
    # models' early-stopping and calibration tenths were drawn, so those splits stay the same.
    for name in sorted(dataset.class_names):
        label = dataset.class_names.index(name)
        units = [indices for indices in members.values() if dataset.labels[indices[0]] == label]
        # Shuffling positions draws the same permutation as shuffling the files themselves, so a split
        # with one file per group equals the split made without groups.
        order = np.arange(len(units))
        generator.shuffle(order)
        sizes = np.array([len(units[position]) for position in order])
        cuts = np.rint(boundaries * sizes.sum()).astype(int)
        middles = np.cumsum(sizes) - sizes / 2.0
        for position, part in zip(order, np.searchsorted(cuts, middles, side="right")):
            parts[part].extend(units[position])

    return [dataset.subset(sorted(part)) for part in parts]


DUPLICATE_MAX_DISTANCE = 24
"""Default for `duplicate_groups`: images whose 256-bit difference hashes differ in at most this many bits
are near-duplicates. On 301 happy/sad web photos it joined 70 pairs and on 4,037 FER2013 validation faces
43 groups. Every group checked by eye (all of the photos', 14 of the faces') was one picture resized,
recompressed, slightly cropped or retouched. At 8 bits, 9 of the photo pairs stayed apart. A group too
many only makes folds and splits coarser, while a missed copy leaks into another fold or part."""

# Number of set bits in each byte value, to count differing hash bits without NumPy 2's bitwise_count.
_BIT_COUNTS = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint16)


def duplicate_groups(dataset: FileDataset, max_distance: int = DUPLICATE_MAX_DISTANCE) -> np.ndarray:
    """Group the files that show the same picture: one photo saved at other sizes, crops or compressions.

    Each image is reduced to a 256-bit difference hash: greyscale, shrunk to 17x16 pixels, one bit per
    pair of horizontal neighbours telling whether the right one is brighter. Files whose hashes differ in
    at most `max_distance` bits share a group, and so do chains of such files. A file that cannot be
    decoded gets a group of its own. The hashes of all pairs are compared, so the time grows with the
    square of the file count: about a second for a few thousand files.

    Args:
        dataset: The files to compare.
        max_distance: Largest number of differing hash bits between near-duplicates, in [0, 256].

    Returns:
        `(N,)` `int64` group ids, one per file; files with equal ids are near-duplicates.

    Raises:
        ValueError: `max_distance` is outside [0, 256].
    """
    if not 0 <= max_distance <= 256:
        raise ValueError(f"Expected max_distance in [0, 256] bits, received {max_distance}.")

    hashes = np.zeros((len(dataset), 32), dtype=np.uint8)
    readable = np.zeros(len(dataset), dtype=bool)
    for index, path in enumerate(dataset.files):
        try:
            image = read_image(path)
        except ImageReadError:
            continue
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (17, 16), interpolation=cv2.INTER_AREA).astype(np.int16)
        hashes[index] = np.packbits(small[:, 1:] > small[:, :-1])
        readable[index] = True

    # Union-find over the pairs of readable files that are close enough, compared in blocks of rows to
    # bound the memory of the pairwise XOR.
    parent = np.arange(len(dataset))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = int(parent[index])
        return index

    rows = np.flatnonzero(readable)
    for start in range(0, len(rows), 256):
        block = rows[start : start + 256]
        distances = _BIT_COUNTS[hashes[block, None, :] ^ hashes[None, rows, :]].sum(axis=2)
        for row, column in zip(*np.nonzero(distances <= max_distance)):
            first, second = root(int(block[row])), root(int(rows[column]))
            if first != second:
                parent[max(first, second)] = min(first, second)

    return np.array([root(index) for index in range(len(dataset))], dtype=np.int64)


def fold_dataset(
    dataset: FileDataset,
    folds: int = 5,
    seed: int = 0,
    groups: Optional[Sequence[int]] = None,
) -> list[FileDataset]:
    """Split files into `folds` disjoint parts for cross-validation, stratified by class.

    The files of one group always land in the same fold, so that near-duplicates (see `duplicate_groups`)
    cannot be trained on in one fold and tested in another. Each class's groups, in the path order of
    their first file, are shuffled with `seed` and dealt to the folds in turn, carrying on from one class
    to the next. A group counts for the class of its first file. Without groups, every fold gets each
    class's files within one of its fair share, and the folds differ in size by at most one file. The same
    seed, files and groups always give the same folds.

    Args:
        dataset: The files to split.
        folds: Number of parts, at least 2 and at most the number of groups.
        seed: Seed of the shuffle.
        groups: One group id per file; `None` puts every file in a group of its own.

    Returns:
        `folds` `FileDataset` parts, each file in exactly one.

    Raises:
        ValueError: `folds` is below 2 or above the number of groups, or `groups` has the wrong length.

    Examples:
        >>> files = FileDataset([Path(f"{index}.png") for index in range(10)], [0] * 6 + [1] * 4, ["a", "b"])
        >>> [len(part) for part in fold_dataset(files, folds=3)]
        [4, 3, 3]
    """
    members = _group_members(dataset, groups)
    if not 2 <= folds <= len(members):
        raise ValueError(
            f"Expected folds between 2 and the number of files or groups of files ({len(members)}), received {folds}."
        )

    generator = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(folds)]
    dealt = 0
    for name in sorted(dataset.class_names):
        label = dataset.class_names.index(name)
        units = [indices for indices in members.values() if dataset.labels[indices[0]] == label]
        for position in generator.permutation(len(units)):
            parts[dealt % folds].extend(units[position])
            dealt += 1

    return [dataset.subset(sorted(part)) for part in parts]


def _group_members(dataset: FileDataset, groups: Optional[Sequence[int]]) -> dict[int, list[int]]:
    """Map each group id to its file indices, groups and files in path order; `None` gives one group per file.

    Sorting by path makes splits and folds independent of the order the file system listed the files in.

    Raises:
        ValueError: `groups` does not have one id per file.
    """
    group_ids = np.arange(len(dataset)) if groups is None else np.asarray(groups).reshape(-1)
    if len(group_ids) != len(dataset):
        raise ValueError(f"Expected one group id per file ({len(dataset)}), received {len(group_ids)}.")

    members: dict[int, list[int]] = {}
    for index in np.argsort([str(path) for path in dataset.files], kind="stable"):
        members.setdefault(int(group_ids[index]), []).append(int(index))
    return members


def load_arrays(
    dataset: FileDataset,
    input_size: tuple[int, int],
    color_mode: str,
    progress: bool = True,
    report: bool = True,
) -> ArrayDataset:
    """Read and preprocess every image of a dataset, skipping files that do not decode.

    Images are taken as face crops already and go through `prepare_faces`, the preprocessing used at
    inference. Each image is preprocessed as soon as it is read, so large photos are never all in memory.

    Args:
        dataset: Files and labels.
        input_size: `(height, width)` of the model input.
        color_mode: `"grayscale"` or `"rgb"`.
        progress: Log progress every 2,000 images.
        report: Log one warning listing the files that do not decode. They are also recorded in
            `ArrayDataset.skipped`.

    Returns:
        The preprocessed images and labels of the files that decoded.

    Raises:
        DatasetError: The dataset has files but none of them decoded.
    """
    rows: list[np.ndarray] = []
    labels: list[int] = []
    kept: list[Path] = []
    skipped: dict[Path, str] = {}
    for index, (path, label) in enumerate(zip(dataset.files, dataset.labels)):
        try:
            image = read_image(path)
        except ImageReadError as error:
            skipped[path] = f"cannot be decoded: {error}"
            continue
        rows.append(prepare_faces([image], input_size, color_mode))
        labels.append(int(label))
        kept.append(path)
        if progress and (index + 1) % 2000 == 0:
            logger.info("Loaded %d of %d images", index + 1, len(dataset))

    if report:
        warn_skipped(skipped)
    if len(dataset) and not rows:
        raise DatasetError(f"None of the {len(dataset)} files could be read as an image: {_list_paths(list(skipped))}.")

    channels = 1 if color_mode == "grayscale" else 3
    x = np.concatenate(rows) if rows else np.zeros((0, *input_size, channels), dtype=np.float32)
    return ArrayDataset(
        x=x,
        y=np.asarray(labels, dtype=np.int64),
        class_names=list(dataset.class_names),
        files=kept,
        skipped=skipped,
    )


def warn_skipped(skipped: Mapping[Path, str]) -> None:
    """Log one warning that counts and lists skipped files with their reasons (nothing when empty).

    Args:
        skipped: Path to the reason it was left out, as in `FileDataset.skipped`.
    """
    if not skipped:
        return
    items = list(skipped.items())
    shown = "; ".join(f"'{path}' ({reason})" for path, reason in items[:20])
    more = f"; and {len(items) - 20} more" if len(items) > 20 else ""
    logger.warning("Skipped %d unreadable or non-image files: %s%s", len(items), shown, more)


def _list_paths(paths: Sequence[Path], limit: int = 10) -> str:
    shown = ", ".join(f"'{path}'" for path in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")
