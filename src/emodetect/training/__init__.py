"""Training utilities: datasets from class folders, network builders, training, evaluation and plots.

Train the baseline CNN of the paper "Facial Expression Detection" on a folder with one sub-folder per
class, test it on a held-out part and save it::

    from emodetect.training import TrainingConfig, train_from_folder

    run = train_from_folder("my_faces", architecture="paper-baseline", config=TrainingConfig(epochs=20))
    print(run.test_report["accuracy"])
    run.save("my-model.keras")

Names are imported on first use. Most of them import TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ARCHITECTURES": "emodetect.training.architectures",
    "Architecture": "emodetect.training.architectures",
    "build_architecture": "emodetect.training.architectures",
    "list_architectures": "emodetect.training.architectures",
    "ArrayDataset": "emodetect.training.data",
    "FileDataset": "emodetect.training.data",
    "duplicate_groups": "emodetect.training.data",
    "fold_dataset": "emodetect.training.data",
    "list_image_folder": "emodetect.training.data",
    "load_arrays": "emodetect.training.data",
    "split_dataset": "emodetect.training.data",
    "FaceCropCache": "emodetect.training.faces",
    "load_face_arrays": "emodetect.training.faces",
    "TrainingConfig": "emodetect.training.train",
    "TrainingResult": "emodetect.training.train",
    "freeze_feature_layers": "emodetect.training.train",
    "train_classifier": "emodetect.training.train",
    "evaluate_arrays": "emodetect.training.evaluate",
    "predict_arrays": "emodetect.training.evaluate",
    "plot_confusion_matrix": "emodetect.training.plots",
    "plot_history": "emodetect.training.plots",
    "save_training_plots": "emodetect.training.plots",
    "FaceOptions": "emodetect.training.workflow",
    "FolderTrainingRun": "emodetect.training.workflow",
    "evaluate_folder": "emodetect.training.workflow",
    "load_base_model": "emodetect.training.workflow",
    "load_folder_folds": "emodetect.training.workflow",
    "load_folder_splits": "emodetect.training.workflow",
    "train_from_folder": "emodetect.training.workflow",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from emodetect.training.architectures import ARCHITECTURES, Architecture, build_architecture, list_architectures
    from emodetect.training.data import (
        ArrayDataset,
        FileDataset,
        duplicate_groups,
        fold_dataset,
        list_image_folder,
        load_arrays,
        split_dataset,
    )
    from emodetect.training.evaluate import evaluate_arrays, predict_arrays
    from emodetect.training.faces import FaceCropCache, load_face_arrays
    from emodetect.training.plots import plot_confusion_matrix, plot_history, save_training_plots
    from emodetect.training.train import TrainingConfig, TrainingResult, freeze_feature_layers, train_classifier
    from emodetect.training.workflow import (
        FaceOptions,
        FolderTrainingRun,
        evaluate_folder,
        load_base_model,
        load_folder_folds,
        load_folder_splits,
        train_from_folder,
    )


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'emodetect.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
