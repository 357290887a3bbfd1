"""Fine-tune the shipped happy/sad classifier on your own folders, and measure by cross-validation whether it helps.

    python examples/finetune_on_your_folders.py DATA_DIR [--faces] [--model happy-sad] [--folds 5]
        [--epochs 20] [--learning-rate 1e-4] [--seed 0] [--freeze-features] [--out tuned.keras]
        [--figures finetune-figures] [--json FILE]

DATA_DIR has one sub-folder per class of the model (happy/ and sad/ for the shipped model); other
sub-folders are left out. With --faces, DATA_DIR contains photos, and the SSD detector crops the largest
face of each as the pipeline does at inference. Without it, the images are face crops already.

How it measures: the files are split with --seed into --folds folds, with near-duplicate files (one
picture saved at other sizes or compressions) kept in one fold. For each fold, a copy of the model
is fine-tuned on the other folds, one of which only picks the best epoch (early stopping), and then
classifies the fold that it never saw. So every face is classified once by the model before fine-tuning
and once by a fine-tuned model that never saw it, and the comparison covers the whole folder instead of
one small held-out part. McNemar's exact test gives the probability of a difference at least this large
between two equally accurate models.

Then the model is fine-tuned once more, on every fold but one, which picks the best epoch, and saved to
--out. The script writes the before and after confusion matrices over all faces, a bar chart of the
metrics and each fold's training curves to --figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from emodetect.errors import DatasetError
from emodetect.metrics import classification_report, mcnemar_test
from emodetect.training import (
    ArrayDataset,
    FaceOptions,
    TrainingConfig,
    TrainingResult,
    load_base_model,
    load_folder_folds,
    plot_confusion_matrix,
    plot_history,
    predict_arrays,
    train_classifier,
)
from emodetect.training.workflow import summarize


def plot_before_after(before: dict[str, Any], after: dict[str, Any], path: Path, title: str) -> None:
    """Draw accuracy, balanced accuracy and each class's F1 before and after fine-tuning as paired bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = ["accuracy", "balanced accuracy"] + [f"F1 {name}" for name in before["class_names"]]
    values = {
        "before": [before["accuracy"], before["balanced_accuracy"]] + [row["f1"] for row in before["per_class"].values()],
        "after": [after["accuracy"], after["balanced_accuracy"]] + [row["f1"] for row in after["per_class"].values()],
    }
    figure = Figure(figsize=(6.4, 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for offset, (label, heights) in zip((-0.2, 0.2), values.items()):
        bars = axes.bar([index + offset for index in range(len(names))], heights, width=0.4, label=label)
        axes.bar_label(bars, fmt="%.2f", fontsize=8)
    axes.set_xticks(range(len(names)), names)
    axes.set(ylim=(0, 1.2), ylabel="score on unseen faces", title=f"{title} ({before['count']} faces)")
    axes.legend(loc="upper center", ncol=2)
    figure.savefig(path)


def fine_tune(
    arguments: argparse.Namespace, train: ArrayDataset, validation: ArrayDataset, seed: int
) -> TrainingResult:
    """Fine-tune a fresh copy of the base model on `train`, stopping early on `validation`."""
    model, metadata = load_base_model(arguments.model)
    # Early stopping restores the weights of the epoch with the lowest validation loss when training ends.
    config = TrainingConfig(
        epochs=arguments.epochs,
        batch_size=32,
        learning_rate=arguments.learning_rate,
        seed=seed,
        augment=True,
        freeze_features=arguments.freeze_features,
        early_stopping_patience=5,
        verbose=0,
    )
    return train_classifier(train, validation, config=config, model=model, metadata=metadata)


def cross_validate(arguments: argparse.Namespace, folds: list[ArrayDataset]) -> dict[str, Any]:
    """Classify every face before fine-tuning and with a model fine-tuned on the other folds.

    Returns:
        The labels (in the model's class order), both sets of probabilities, each fold's accuracy before
        and after, and each fold's training history.
    """
    model, metadata = load_base_model(arguments.model)
    # Folder class order may differ from the model's, so labels are mapped by name.
    to_model_index = np.array([metadata.class_names.index(name) for name in folds[0].class_names], dtype=np.int64)

    labels, before, after, fold_scores, histories = [], [], [], [], {}
    for index, test in enumerate(folds):
        # The next fold only picks the best epoch, and the remaining ones are trained on.
        validation_index = (index + 1) % len(folds)
        train = ArrayDataset.concatenate(
            [fold for other, fold in enumerate(folds) if other not in (index, validation_index)]
        )
        validation = folds[validation_index]
        result = fine_tune(arguments, train, validation, seed=arguments.seed * 100 + index)

        true = to_model_index[test.y]
        fold_before = predict_arrays(model, metadata, test.x)
        fold_after = predict_arrays(result.model, result.metadata, test.x)
        labels.append(true)
        before.append(fold_before)
        after.append(fold_after)
        fold_scores.append(
            {
                "faces": len(test),
                "accuracy_before": float(np.mean(fold_before.argmax(axis=1) == true)),
                "accuracy_after": float(np.mean(fold_after.argmax(axis=1) == true)),
                "epochs_run": len(result.history["loss"]),
            }
        )
        histories[f"fold {index + 1}"] = result.history
        print(
            f"Fold {index + 1}/{len(folds)}: {len(test)} faces, accuracy {fold_scores[-1]['accuracy_before']:.3f} -> "
            f"{fold_scores[-1]['accuracy_after']:.3f}"
        )

    return {
        "class_names": list(metadata.class_names),
        "labels": np.concatenate(labels),
        "before": np.concatenate(before),
        "after": np.concatenate(after),
        "folds": fold_scores,
        "histories": histories,
    }


def record_run(path: Path, arguments: argparse.Namespace, record: dict[str, Any]) -> None:
    """Store one run under its seed and settings in a JSON file, keeping the runs already there."""
    runs = json.loads(path.read_text()) if path.is_file() else {}
    layers = "frozen features" if arguments.freeze_features else "all layers"
    inputs = "faces of" if arguments.faces else "crops in"
    key = (
        f"{arguments.model} on {inputs} {arguments.data_dir.name}, seed {arguments.seed}, {arguments.folds} folds, "
        f"learning rate {arguments.learning_rate:g}, {arguments.epochs} epochs, {layers}"
    )
    runs[key] = {"command": " ".join(["python", "examples/finetune_on_your_folders.py", *sys.argv[1:]]), **record}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="folder with one sub-folder per class of the model")
    parser.add_argument("--model", default="happy-sad", help="shipped model name or .keras file to start from")
    parser.add_argument("--faces", action="store_true", help="crop the largest SSD face of each photo")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds, at least 3 (default: 5)")
    parser.add_argument("--epochs", type=int, default=20, help="maximum fine-tuning epochs (default: 20)")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="Adam learning rate (default: 1e-4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and the training (default: 0)")
    parser.add_argument("--freeze-features", action="store_true", help="train only the layers after the features")
    parser.add_argument("--out", type=Path, default=Path("tuned.keras"), help="fine-tuned model (default: tuned.keras)")
    parser.add_argument("--figures", type=Path, default=Path("finetune-figures"), help="folder for the PNG figures")
    parser.add_argument("--json", type=Path, help="add this run's reports to this JSON file, by seed and settings")
    arguments = parser.parse_args()
    # emodetect's warnings list the files it leaves out, and an info line counts the near-duplicates that
    # it keeps in one fold.
    logging.basicConfig(format="%(levelname)s: %(message)s")
    logging.getLogger("emodetect.training.workflow").setLevel(logging.INFO)

    if not arguments.data_dir.is_dir():
        sys.exit(f"Folder not found: '{arguments.data_dir}'. Pass a folder with one sub-folder per class.")
    # Each fold needs a test fold, a validation fold and at least one fold to train on.
    if arguments.folds < 3:
        sys.exit(f"--folds must be 3 or more, received {arguments.folds}.")

    # The model's metadata sets the classes, input size, colour mode and crop margin of the data.
    _, metadata = load_base_model(arguments.model)
    faces = FaceOptions() if arguments.faces else None
    try:
        folds = load_folder_folds(arguments.data_dir, metadata, folds=arguments.folds, seed=arguments.seed, faces=faces)
    except (DatasetError, ValueError) as error:
        sys.exit(f"Cannot make {arguments.folds} folds of '{arguments.data_dir}': {error}")
    print(f"Faces per fold: {[fold.class_counts() for fold in folds]}")
    empty = [index + 1 for index, fold in enumerate(folds) if len(fold) == 0]
    if empty:
        sys.exit(f"Folds {empty} have no face after decoding and face detection. Use fewer --folds or add images.")

    measured = cross_validate(arguments, folds)
    before = classification_report(measured["labels"], measured["before"], measured["class_names"])
    after = classification_report(measured["labels"], measured["after"], measured["class_names"])
    paired = mcnemar_test(measured["labels"], measured["before"].argmax(axis=1), measured["after"].argmax(axis=1))

    print(f"All {before['count']} faces, before fine-tuning ({arguments.model}):")
    print(summarize(before))
    print("The same faces, each classified by a model fine-tuned without it:")
    print(summarize(after))
    print(
        f"Faces only the fine-tuned models got right: {paired['only_b_correct']}; only the base model: "
        f"{paired['only_a_correct']}; McNemar's exact test p = {paired['p_value']:.3g}"
    )

    arguments.figures.mkdir(parents=True, exist_ok=True)
    plot_confusion_matrix(before, arguments.figures / "before-confusion.png", title=f"{arguments.model}, before")
    plot_confusion_matrix(after, arguments.figures / "after-confusion.png", title="after fine-tuning, unseen folds")
    plot_history(measured["histories"], arguments.figures / "finetune-curves.png", title="Fine-tuning, one run per fold")
    plot_before_after(before, after, arguments.figures / "before-after.png", title="Cross-validated, before and after")

    # The model to keep: fine-tuned on every fold but the first, which picks the best epoch.
    final = fine_tune(arguments, ArrayDataset.concatenate(folds[1:]), folds[0], seed=arguments.seed * 100 + len(folds))
    final.metadata.extra["finetune_example"] = {
        "data": str(arguments.data_dir),
        "folds": arguments.folds,
        "seed": arguments.seed,
        "cross_validated_before": {key: before[key] for key in ("count", "accuracy", "balanced_accuracy", "macro_f1")},
        "cross_validated_after": {key: after[key] for key in ("count", "accuracy", "balanced_accuracy", "macro_f1")},
        "mcnemar": paired,
    }
    final.save(arguments.out)

    if arguments.json:
        record = {
            "counts": [fold.class_counts() for fold in folds],
            "folds": measured["folds"],
            "before": before,
            "after": after,
            "mcnemar": paired,
            "final_epochs_run": len(final.history["loss"]),
        }
        record_run(arguments.json, arguments, record)
    print(f"accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f}; saved {arguments.out}; figures in {arguments.figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
