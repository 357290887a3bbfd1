"""Fine-tune the shipped happy/sad classifier on your own folders and measure it before and after.

    python examples/finetune_on_your_folders.py DATA_DIR [--faces] [--model happy-sad] [--epochs 20]
        [--seed 0] [--freeze-features] [--out tuned.keras] [--figures finetune-figures]

DATA_DIR has one sub-folder per class of the model (happy/ and sad/ for the shipped model); other
sub-folders are left out. With --faces, DATA_DIR contains photos, and the SSD detector crops the largest
face of each as the pipeline does at inference. Without it, the images are face crops already.

The files are split once with --seed: 60% to fine-tune on, 20% to pick the best epoch, and 20% held out.
The held-out part is measured with the model before and after fine-tuning, and the script writes the
before/after confusion matrices, a bar chart of the metrics and the training curves to --figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from emodetect.training import (
    FaceOptions,
    TrainingConfig,
    evaluate_arrays,
    load_base_model,
    load_folder_splits,
    plot_confusion_matrix,
    plot_history,
    train_classifier,
)
from emodetect.training.workflow import summarize

SPLIT = (0.6, 0.2, 0.2)


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
    axes.set(ylim=(0, 1.2), ylabel="held-out score", title=f"{title} ({before['count']} faces)")
    axes.legend(loc="upper center", ncol=2)
    figure.savefig(path)


def record_run(path: Path, arguments: argparse.Namespace, counts: Any, before: Any, after: Any, history: Any) -> None:
    """Store one run under its seed and settings in a JSON file, keeping the runs already there."""
    runs = json.loads(path.read_text()) if path.is_file() else {}
    layers = "frozen features" if arguments.freeze_features else "all layers"
    key = f"seed {arguments.seed}, learning rate {arguments.learning_rate:g}, {arguments.epochs} epochs, {layers}"
    runs[key] = {
        "command": " ".join(["python", "examples/finetune_on_your_folders.py", *sys.argv[1:]]),
        "counts": counts,
        "epochs_run": len(history["loss"]),
        "before": before,
        "after": after,
        "history": history,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="folder with one sub-folder per class of the model")
    parser.add_argument("--model", default="happy-sad", help="shipped model name or .keras file to start from")
    parser.add_argument("--faces", action="store_true", help="crop the largest SSD face of each photo")
    parser.add_argument("--epochs", type=int, default=20, help="maximum fine-tuning epochs (default: 20)")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="Adam learning rate (default: 1e-4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the training (default: 0)")
    parser.add_argument("--freeze-features", action="store_true", help="train only the layers after the features")
    parser.add_argument("--out", type=Path, default=Path("tuned.keras"), help="fine-tuned model (default: tuned.keras)")
    parser.add_argument("--figures", type=Path, default=Path("finetune-figures"), help="folder for the PNG figures")
    parser.add_argument("--json", type=Path, help="add this run's before/after reports to this JSON file, by seed")
    arguments = parser.parse_args()

    if not arguments.data_dir.is_dir():
        sys.exit(f"Folder not found: '{arguments.data_dir}'. Pass a folder with one sub-folder per class.")

    # The model's metadata sets the classes, input size, colour mode and crop margin of the data.
    model, metadata = load_base_model(arguments.model)
    faces = FaceOptions() if arguments.faces else None
    splits = load_folder_splits(arguments.data_dir, metadata, SPLIT, seed=arguments.seed, faces=faces)
    print(f"Faces per part: {splits.counts()}")
    if not len(splits.test):
        sys.exit("The held-out part is empty; add images so that each class has at least 3.")

    before = evaluate_arrays(model, metadata, splits.test)

    # Early stopping restores the weights of the epoch with the lowest validation loss when training ends.
    config = TrainingConfig(
        epochs=arguments.epochs,
        batch_size=32,
        learning_rate=arguments.learning_rate,
        seed=arguments.seed,
        augment=True,
        freeze_features=arguments.freeze_features,
        early_stopping_patience=5 if len(splits.validation) else None,
        verbose=0,
    )
    validation = splits.validation if len(splits.validation) else None
    result = train_classifier(splits.train, validation, config=config, model=model, metadata=metadata)
    after = evaluate_arrays(result.model, result.metadata, splits.test)

    print(f"Held-out part before fine-tuning ({arguments.model}):")
    print(summarize(before))
    print("Held-out part after fine-tuning:")
    print(summarize(after))

    arguments.figures.mkdir(parents=True, exist_ok=True)
    plot_confusion_matrix(before, arguments.figures / "before-confusion.png", title=f"{arguments.model}, before")
    plot_confusion_matrix(after, arguments.figures / "after-confusion.png", title="after fine-tuning")
    plot_history(result.history, arguments.figures / "finetune-curves.png", title="Fine-tuning")
    plot_before_after(before, after, arguments.figures / "before-after.png", title="Held-out part, before and after")

    result.metadata.extra["finetune_example"] = {
        "data": str(arguments.data_dir),
        "split": list(SPLIT),
        "seed": arguments.seed,
        "held_out_before": {key: before[key] for key in ("count", "accuracy", "balanced_accuracy", "macro_f1")},
        "held_out_after": {key: after[key] for key in ("count", "accuracy", "balanced_accuracy", "macro_f1")},
    }
    result.save(arguments.out)
    if arguments.json:
        record_run(arguments.json, arguments, splits.counts(), before, after, result.history)
    print(f"accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f}; saved {arguments.out}; figures in {arguments.figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
