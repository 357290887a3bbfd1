"""Train and evaluate from class folders in one call: list, split, crop faces, train, evaluate, save.

`train_from_folder` and `evaluate_folder` are what `emodetect train` and `emodetect evaluate` run. Both
take the input size, colour mode and crop margin from the model's metadata, so a folder is always
preprocessed the way the model will see faces at inference.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from emodetect.errors import DatasetError
from emodetect.model_io import ModelMetadata, load_model
from emodetect.training.data import (
    ArrayDataset,
    FileDataset,
    duplicate_groups,
    fold_dataset,
    list_image_folder,
    load_arrays,
    split_dataset,
    warn_skipped,
)

if TYPE_CHECKING:
    import keras

    from emodetect.detectors import Detector
    from emodetect.training.train import TrainingConfig, TrainingResult

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_FRACTIONS = (0.7, 0.2, 0.1)
"""Train, validation and test shares of each class: 70/20/10, the split of the paper "Facial Expression Detection"."""
SUBSETS = ("all", "train", "validation", "test")


@dataclass
class FaceOptions:
    """How to turn photos into face crops (see `emodetect.training.faces`).

    Attributes:
        detector: A registered detector name or a `Detector`.
        faces: `"largest"` keeps the largest face of each image, `"all"` keeps every face with the image's
            label.
        confidence_threshold: Detector threshold in [0, 1] for a detector name; `None` keeps the backend's
            default, the one `Pipeline` uses.
        cache_dir: Folder of the crop cache; `None` uses `face-crops` in the weights cache folder.
    """

    detector: Union[str, "Detector"] = "ssd"
    faces: str = "largest"
    confidence_threshold: Optional[float] = None
    cache_dir: Optional[PathLike] = None

    def describe(self) -> dict[str, Any]:
        """Return the options as JSON-ready values, for the metadata of a trained model."""
        return {
            "detector": self.detector if isinstance(self.detector, str) else repr(self.detector),
            "faces": self.faces,
            "confidence_threshold": self.confidence_threshold,
        }


@dataclass
class FolderSplits:
    """A class folder split once by file and loaded for one model.

    Attributes:
        files: The train, validation and test file lists, before decoding and face detection.
        train: Preprocessed training faces.
        validation: Preprocessed validation faces (may be empty).
        test: Preprocessed test faces (may be empty).
        skipped: Every file left out, with the reason: not an image, cannot be decoded, no face found.
    """

    files: list[FileDataset]
    train: ArrayDataset
    validation: ArrayDataset
    test: ArrayDataset
    skipped: dict[Path, str] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """Return the number of faces per class in each part."""
        return {
            "train": self.train.class_counts(),
            "validation": self.validation.class_counts(),
            "test": self.test.class_counts(),
        }


@dataclass
class FolderTrainingRun:
    """The outcome of `train_from_folder`.

    Attributes:
        result: The trained model, its metadata and per-epoch history.
        splits: The data it was trained, validated and tested on.
        test_report: `evaluate_arrays` on the test part, or `None` when the test part is empty.
    """

    result: "TrainingResult"
    splits: FolderSplits
    test_report: Optional[dict[str, Any]]

    def save(self, path: PathLike) -> Path:
        """Save the model with its metadata as a `.keras` file and return the path."""
        return self.result.save(path)


def resolve_model_file(model: PathLike) -> Path:
    """Return the file of a saved model given as a path or as the name of a shipped model.

    Args:
        model: A `.keras` file saved by emodetect, or a shipped model name such as `"happy-sad"`.

    Returns:
        The path of the `.keras` file.

    Raises:
        FileNotFoundError: The file does not exist, or the name is neither a file nor a shipped model.
    """
    from emodetect.classifiers.keras_model import SHIPPED_MODELS, shipped_model_path

    path = Path(model)
    if path.is_file():
        return path
    if str(model) in SHIPPED_MODELS:
        return shipped_model_path(str(model))
    raise FileNotFoundError(
        f"Model not found: '{model}' is neither a .keras file nor a shipped model. "
        f"Shipped models: {sorted(SHIPPED_MODELS)}; pass one of them or the path of a model saved by emodetect."
    )


def load_base_model(model: PathLike) -> tuple["keras.Model", ModelMetadata]:
    """Load a saved or shipped model with its metadata, to fine-tune or evaluate it.

    Args:
        model: A `.keras` file saved by emodetect, or a shipped model name such as `"happy-sad"`.

    Returns:
        The Keras model (not compiled) and its metadata.

    Raises:
        FileNotFoundError: The model cannot be found.
        ModelFormatError: The file lacks emodetect metadata or Keras cannot load it.
    """
    return load_model(resolve_model_file(model))


def load_folder_splits(
    data_dir: PathLike,
    metadata: ModelMetadata,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    faces: Optional[FaceOptions] = None,
    files: Optional[FileDataset] = None,
    group_duplicates: bool = True,
) -> FolderSplits:
    """List a class folder, split it once by file, and load each part for a model.

    Every face of one photo lands in the same part. With `group_duplicates`, so do near-duplicate files
    (one picture saved at other sizes or compressions, see `emodetect.training.data.duplicate_groups`), so
    no picture is both trained on and tested.

    Args:
        data_dir: Folder with one sub-folder per class; sub-folders that are not classes of the model are
            reported and left out.
        metadata: The model's class names and preprocessing settings.
        fractions: Train, validation and test shares, summing to 1.
        seed: Seed of the split.
        faces: Detect faces and load their crops; `None` takes every image as a face crop already.
        files: The listing of `data_dir`, when the caller already has it.
        group_duplicates: Keep near-duplicate files in one part. It decodes every file once more.

    Returns:
        The split and loaded data. One warning lists the files that are not readable images and one lists
        the images without a face.

    Raises:
        ValueError: `fractions` has more than three values or does not sum to 1.
        DatasetError: The folder lacks a class of the model, a class has no image, or a class has no
            training image after decoding and face detection.
    """
    if not 1 <= len(fractions) <= 3:
        raise ValueError(f"Expected 1 to 3 fractions (train, validation, test), received {list(fractions)}.")
    if files is None:
        files = list_image_folder(data_dir, metadata.class_names, report=False)
    parts = split_dataset(files, fractions, seed=seed, groups=_groups(files, group_duplicates))
    while len(parts) < 3:
        parts.append(files.subset([]))
    loaded, skipped = _load_parts(files, parts, metadata, faces)

    train = loaded[0]
    missing = [name for name, count in train.class_counts().items() if count == 0]
    if missing:
        raise DatasetError(
            f"Classes {missing} have no training image in '{data_dir}' after decoding"
            f"{' and face detection' if faces else ''}. Add images to those classes."
        )
    return FolderSplits(files=parts, train=train, validation=loaded[1], test=loaded[2], skipped=skipped)


def load_folder_folds(
    data_dir: PathLike,
    metadata: ModelMetadata,
    folds: int = 5,
    seed: int = 0,
    faces: Optional[FaceOptions] = None,
    group_duplicates: bool = True,
) -> list[ArrayDataset]:
    """List a class folder, split it by file into folds for cross-validation, and load each fold for a model.

    Every face of one photo lands in the same fold, and so do near-duplicate files (one picture saved at
    other sizes or compressions, see `emodetect.training.data.duplicate_groups`), so no picture is both
    trained on and tested. Near-duplicates filed under different classes are reported in a warning.

    Args:
        data_dir: Folder with one sub-folder per class; sub-folders that are not classes of the model are
            reported and left out.
        metadata: The model's class names and preprocessing settings.
        folds: Number of folds, at least 2 (see `emodetect.training.data.fold_dataset`).
        seed: Seed of the split.
        faces: Detect faces and load their crops; `None` takes every image as a face crop already.
        group_duplicates: Keep near-duplicate files in one fold. It decodes every file once more.

    Returns:
        One `ArrayDataset` per fold. One warning lists the files that are not readable images and one lists
        the images without a face.

    Raises:
        ValueError: `folds` is below 2 or above the number of files (or groups of near-duplicates).
        DatasetError: The folder lacks a class of the model, or a class has no face left after decoding and
            face detection.
    """
    files = list_image_folder(data_dir, metadata.class_names, report=False)
    parts = fold_dataset(files, folds, seed=seed, groups=_groups(files, group_duplicates))
    loaded, _ = _load_parts(files, parts, metadata, faces)

    counts = ArrayDataset.concatenate(loaded).class_counts()
    missing = [name for name, count in counts.items() if count == 0]
    if missing:
        raise DatasetError(
            f"Classes {missing} have no image left in '{data_dir}' after decoding"
            f"{' and face detection' if faces else ''}. Add images to those classes."
        )
    return loaded


def _groups(files: FileDataset, group_duplicates: bool) -> Optional[np.ndarray]:
    if not group_duplicates:
        return None
    groups = duplicate_groups(files)
    _report_duplicates(files, groups)
    return groups


def _report_duplicates(files: FileDataset, groups: np.ndarray) -> None:
    _, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    grouped = sizes[inverse] > 1
    if grouped.any():
        logger.info(
            "%d files are near-duplicates of another file, in %d groups; each group stays in one part",
            int(grouped.sum()),
            int((sizes > 1).sum()),
        )

    conflicting = []
    for group in np.unique(groups[grouped]):
        members = np.flatnonzero(groups == group)
        if len(set(files.labels[members].tolist())) > 1:
            conflicting.append(" = ".join(f"'{files.files[index]}'" for index in members))
    if conflicting:
        logger.warning(
            "%d groups of near-duplicate images are filed under different classes, so their labels conflict: %s. "
            "Remove the wrong copies.",
            len(conflicting),
            "; ".join(conflicting[:5]) + (f" and {len(conflicting) - 5} more" if len(conflicting) > 5 else ""),
        )


def _load_parts(
    files: FileDataset, parts: list[FileDataset], metadata: ModelMetadata, faces: Optional[FaceOptions]
) -> tuple[list[ArrayDataset], dict[Path, str]]:
    """Load each part of a listing for a model, and report every file left out in one warning per reason."""
    loader = _make_loader(metadata, faces)
    loaded = [loader(part) for part in parts]
    skipped: dict[Path, str] = dict(files.skipped)
    for data in loaded:
        skipped.update(data.skipped)
    _warn_once(skipped)
    return loaded, skipped


def _make_loader(metadata: ModelMetadata, faces: Optional[FaceOptions]):  # type: ignore[no-untyped-def]
    if faces is None:
        return lambda part: load_arrays(part, metadata.input_size, metadata.color_mode, report=False)

    from emodetect.training.faces import FaceCropCache, load_face_arrays

    cropper = FaceCropCache(
        faces.detector,
        crop_margin=metadata.crop_margin,
        cache_dir=faces.cache_dir,
        confidence_threshold=faces.confidence_threshold,
    )
    return lambda part: load_face_arrays(
        part, metadata.input_size, metadata.color_mode, cropper, faces=faces.faces, report=False
    )


def _warn_once(skipped: dict[Path, str]) -> None:
    from emodetect.training.faces import NO_FACE, warn_no_face

    warn_no_face(skipped)
    warn_skipped({path: reason for path, reason in skipped.items() if reason != NO_FACE})


def train_from_folder(
    data_dir: PathLike,
    architecture: Optional[str] = None,
    base_model: Optional[PathLike] = None,
    config: Optional["TrainingConfig"] = None,
    architecture_options: Optional[dict[str, Any]] = None,
    faces: Optional[FaceOptions] = None,
    crop_margin: Optional[float] = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    split_seed: Optional[int] = None,
    group_duplicates: bool = True,
) -> FolderTrainingRun:
    """Train a new network, or fine-tune a saved one, on a class folder and test it on a held-out part.

    The folder is split once by file (`split_dataset`), so no image, and no face of one photo, is in two
    parts. Near-duplicate files stay in one part too, unless `group_duplicates` is false. The model trains
    on the training part, the validation part drives early stopping, checkpoints and the `val_*` curves,
    and the test part is used only for the final report.

    Args:
        data_dir: Folder with one sub-folder per class.
        architecture: Registered architecture of a new network (see `list_architectures`).
        base_model: A `.keras` file or shipped model name to fine-tune instead. Its class names select the
            sub-folders; other sub-folders are reported and left out.
        config: Training settings; the defaults are the recipe of the baseline in the paper "Facial
            Expression Detection" (20 epochs, batch 32, Adam 1e-3).
        architecture_options: Keyword arguments for the architecture builder.
        faces: Train on detected face crops; `None` takes every image as a face crop already.
        crop_margin: Context around detector boxes stored in the model and used for its crops; by default
            the architecture's default or the base model's value.
        fractions: Train, validation and test shares, summing to 1.
        split_seed: Seed of the split; `config.seed` when `None`.
        group_duplicates: Keep near-duplicate files in one part (see `load_folder_splits`).

    Returns:
        The trained model with its history, the data, and the test report.

    Raises:
        ValueError: Both or neither of `architecture` and `base_model` are given, an architecture option
            is invalid, or `crop_margin` is negative.
        DatasetError: The folder is missing, has fewer than two classes, an empty class, or no training
            image for a class.
        FileNotFoundError: `base_model` cannot be found.
    """
    from emodetect.training.evaluate import evaluate_arrays
    from emodetect.training.train import TrainingConfig, train_classifier

    if (architecture is None) == (base_model is None):
        raise ValueError(
            f"Expected either an architecture for a new network or a base model to fine-tune, received "
            f"architecture={architecture!r} and base_model={base_model!r}."
        )
    config = config or TrainingConfig()
    split_seed = config.seed if split_seed is None else split_seed
    started = time.perf_counter()

    base_file = None
    if base_model is not None:
        base_file = resolve_model_file(base_model)
        model, metadata = load_model(base_file)
        files = list_image_folder(data_dir, metadata.class_names, report=False)
    else:
        assert architecture is not None
        files = list_image_folder(data_dir, report=False)
        model, metadata = _build(architecture, files.class_names, architecture_options or {})
    if crop_margin is not None:
        if crop_margin < 0:
            raise ValueError(f"Expected crop_margin >= 0, received {crop_margin}.")
        metadata.crop_margin = float(crop_margin)

    splits = load_folder_splits(
        data_dir, metadata, fractions, split_seed, faces, files=files, group_duplicates=group_duplicates
    )
    logger.info("Data from %s: %s", data_dir, splits.counts())

    validation = splits.validation if len(splits.validation) else None
    result = train_classifier(splits.train, validation, config=config, model=model, metadata=metadata)

    test_report = evaluate_arrays(result.model, result.metadata, splits.test) if len(splits.test) else None
    if test_report is not None:
        logger.info(
            "Test: accuracy %.3f, balanced accuracy %.3f on %d faces",
            test_report["accuracy"],
            test_report["balanced_accuracy"],
            test_report["count"],
        )

    result.metadata.extra["training"].update(
        {
            "data": str(data_dir),
            "fractions": [float(value) for value in fractions],
            "split_seed": split_seed,
            "group_duplicates": group_duplicates,
            "faces": faces.describe() if faces else None,
            "counts": splits.counts(),
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "learning_rate": config.learning_rate,
            "augment": config.augment,
            "freeze_features": config.freeze_features,
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    if base_file is not None:
        result.metadata.extra.setdefault("base_model", {})["file"] = str(base_file)
    if test_report is not None:
        result.metadata.extra["test"] = {
            key: test_report[key] for key in ("count", "accuracy", "balanced_accuracy", "macro_f1")
        }
    return FolderTrainingRun(result=result, splits=splits, test_report=test_report)


def _build(
    architecture: str, class_names: list[str], options: dict[str, Any]
) -> tuple["keras.Model", ModelMetadata]:
    from emodetect.training.architectures import build_architecture

    built = build_architecture(architecture, len(class_names), **options)
    metadata = ModelMetadata(
        class_names=list(class_names),
        input_size=built.input_size,
        color_mode=built.color_mode,
        crop_margin=built.default_crop_margin,
        output=built.output,
        architecture=architecture,
        extra={"architecture_options": {key: _json_ready(value) for key, value in options.items()}},
    )
    return built.model, metadata


def _json_ready(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def evaluate_folder(
    model: Union[PathLike, tuple["keras.Model", ModelMetadata]],
    data_dir: PathLike,
    faces: Optional[FaceOptions] = None,
    subset: str = "all",
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    group_duplicates: Optional[bool] = None,
) -> dict[str, Any]:
    """Evaluate a model on a class folder whose sub-folders are matched to the model's classes by name.

    Sub-folders that are not classes of the model are reported and left out. The folder may hold only
    some of the model's classes: the others get a support of 0.

    Args:
        model: A `.keras` file, a shipped model name, or a `(keras.Model, ModelMetadata)` pair.
        data_dir: Folder with one sub-folder per class.
        faces: Detect faces and evaluate on their crops; `None` takes every image as a face crop already.
        subset: `"all"` evaluates every file. `"train"`, `"validation"` or `"test"` evaluates that part of
            the split that `train_from_folder` makes with the same `fractions` and `seed`.
        fractions: Train, validation and test shares, for `subset`.
        seed: Seed of the split, for `subset`.
        group_duplicates: Keep near-duplicate files in one part, for `subset`. `None` repeats what the
            model's training recorded in `extra["training"]["group_duplicates"]`, and splits by file for a
            model without that record (trained before the setting existed, or not by `train_from_folder`).

    Returns:
        The `classification_report` dict (accuracy, balanced accuracy, per-class precision, recall, F1 and
        support, confusion matrix) plus `data`: folder, subset, images, faces and skipped files.

    Raises:
        ValueError: `subset` is not one of `SUBSETS`.
        DatasetError: No sub-folder matches a class of the model, or no face is left to evaluate.
        FileNotFoundError: The model cannot be found.
    """
    from emodetect.training.evaluate import evaluate_arrays

    if subset not in SUBSETS:
        raise ValueError(f"Expected subset in {SUBSETS}, received {subset!r}.")
    keras_model, metadata = model if isinstance(model, tuple) else load_base_model(model)

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(f"Dataset folder not found: '{data_dir}'. Expected a folder with one sub-folder per class.")
    folders = {path.name for path in data_dir.iterdir() if path.is_dir() and not path.name.startswith(".")}
    matched = [name for name in metadata.class_names if name in folders]
    if not matched:
        raise DatasetError(
            f"No sub-folder of '{data_dir}' is named after a class of the model. Model classes: "
            f"{metadata.class_names}; sub-folders: {sorted(folders)}."
        )
    files = list_image_folder(data_dir, matched, min_classes=1, report=False)

    if subset == "all":
        parts = [files]
    else:
        if group_duplicates is None:
            group_duplicates = bool(metadata.extra.get("training", {}).get("group_duplicates", False))
        parts = split_dataset(files, fractions, seed=seed, groups=_groups(files, group_duplicates))
        parts = [parts[SUBSETS.index(subset) - 1]]
    loaded = _make_loader(metadata, faces)(parts[0])
    skipped = {**files.skipped, **loaded.skipped}
    _warn_once(skipped)
    if not len(loaded):
        raise DatasetError(f"No face left to evaluate in '{data_dir}' ({subset} files: {len(parts[0])}).")

    report = evaluate_arrays(keras_model, metadata, loaded)
    report["data"] = {
        "folder": str(data_dir),
        "subset": subset,
        "fractions": [float(value) for value in fractions] if subset != "all" else None,
        "seed": seed if subset != "all" else None,
        "images": len(parts[0]),
        "faces": len(loaded),
        "face_options": faces.describe() if faces else None,
        "skipped": {str(path): reason for path, reason in skipped.items()},
    }
    return report


def summarize(report: dict[str, Any]) -> str:
    """Format a classification report as a short text table: overall metrics, per-class rows, confusion."""
    names = list(report["class_names"])
    width = max(9, *(len(name) for name in names))
    lines = [
        f"accuracy {report['accuracy']:.3f}, balanced accuracy {report['balanced_accuracy']:.3f}, "
        f"macro F1 {report['macro_f1']:.3f} on {report['count']} faces",
        f"{'class':<{width}}  precision  recall     F1  support",
    ]
    for name in names:
        row = report["per_class"][name]
        lines.append(
            f"{name:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}  {row['support']:7d}"
        )
    matrix = np.asarray(report["confusion_matrix"])
    lines.append("confusion matrix (rows true, columns predicted):")
    lines.append(" " * (width + 2) + "  ".join(f"{name:>{width}}" for name in names))
    for name, row in zip(names, matrix):
        lines.append(f"{name:<{width}}  " + "  ".join(f"{int(count):>{width}}" for count in row))
    return "\n".join(lines)
