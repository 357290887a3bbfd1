"""Sub-commands `emodetect train` and `emodetect evaluate`.

This module imports neither TensorFlow nor OpenCV: the handlers import the training package when they
run, so `emodetect --help` stays fast.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the `train` and `evaluate` sub-commands to the `emodetect` parser."""
    train = commands.add_parser(
        "train",
        help="train or fine-tune a classifier on a folder of class sub-folders",
        description=(
            "Train a new network (--arch) or fine-tune a saved or shipped model (--from) on DATA_DIR, whose "
            "sub-folders are the classes. The files are split once, with --seed, into train/validation/test "
            "parts (default 70/20/10); the test part is used only for the final report. Without --faces, "
            "every image is taken as a face crop already."
        ),
    )
    train.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="folder with one sub-folder of images per class")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--arch", help="architecture of a new network, such as paper-baseline or mini-vgg")
    source.add_argument(
        "--from",
        dest="base_model",
        metavar="MODEL",
        help="fine-tune this model: a .keras file or a shipped model name such as happy-sad",
    )
    train.add_argument("--out", type=Path, required=True, metavar="MODEL", help="output .keras file")
    _add_face_arguments(train)
    train.add_argument(
        "--crop-margin",
        type=float,
        help="context added around each detector box on each side, as a fraction of the box side "
        "(default: the architecture's default, or the --from model's value)",
    )
    train.add_argument("--epochs", type=int, default=20, help="maximum number of epochs (default: 20)")
    train.add_argument("--batch-size", type=int, default=32, help="images per gradient step (default: 32)")
    train.add_argument(
        "--learning-rate",
        type=float,
        help="Adam learning rate (default: 1e-3 for a new network, 1e-4 with --from)",
    )
    train.add_argument("--seed", type=int, default=0, help="seed of the split, initialisation and shuffling (default: 0)")
    _add_split_argument(train)
    train.add_argument("--augment", action="store_true", help="random flips, rotations, shifts, zoom and contrast")
    train.add_argument("--balance-classes", action="store_true", help="weight classes by inverse frequency")
    train.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="architecture option as a Python literal, repeatable: normalization=True, dropout=0.3, "
        "input_size=128,128",
    )
    train.add_argument(
        "--early-stopping",
        type=int,
        metavar="EPOCHS",
        help="stop after this many epochs without a lower validation loss and keep the best weights",
    )
    train.add_argument("--checkpoint", type=Path, metavar="FILE", help="save the best model so far to this .keras file")
    train.add_argument(
        "--freeze-features",
        action="store_true",
        help="train only the layers after the last Flatten or global pooling layer (for fine-tuning)",
    )
    train.add_argument("--plots", type=Path, metavar="DIR", help="write curves.png and confusion.png (test part) here")
    train.add_argument("--json", type=Path, dest="json_file", metavar="FILE", help="write history and test metrics as JSON")
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="measure a model on a folder of class sub-folders",
        description=(
            "Evaluate MODEL (a .keras file or a shipped model name) on DATA_DIR. Sub-folders are matched to "
            "the model's class names; sub-folders the model has no class for are reported and left out. "
            "Prints accuracy, per-class precision, recall and F1, and the confusion matrix. Without --faces, "
            "every image is taken as a face crop already."
        ),
    )
    evaluate.add_argument("model", metavar="MODEL", help="a .keras file or a shipped model name such as happy-sad")
    evaluate.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="folder with one sub-folder of images per class")
    _add_face_arguments(evaluate)
    evaluate.add_argument(
        "--subset",
        choices=("all", "train", "validation", "test"),
        default="all",
        help="evaluate every file (default) or one part of the split that 'emodetect train' makes with the "
        "same --seed, --split and --split-by-file",
    )
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the split, with --subset (default: 0)")
    _add_split_argument(evaluate, evaluating=True)
    evaluate.add_argument("--plots", type=Path, metavar="DIR", help="write confusion.png here")
    evaluate.add_argument("--json", type=Path, dest="json_file", metavar="FILE", help="write the metrics as JSON ('-' for stdout)")
    evaluate.set_defaults(handler=run_evaluate)


def _add_face_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--faces",
        action="store_true",
        help="detect faces and use the largest face of each image, cropped as the pipeline crops it",
    )
    parser.add_argument("--all-faces", action="store_true", help="like --faces, but use every face of each image")
    parser.add_argument("--detector", default="ssd", help="face detector for --faces (default: ssd)")
    parser.add_argument("--threshold", type=float, help="minimum detector confidence in [0, 1] (default: 0.5)")
    parser.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="folder of the face-crop cache (default: face-crops in the weights cache folder)",
    )


def _add_split_argument(parser: argparse.ArgumentParser, evaluating: bool = False) -> None:
    parser.add_argument(
        "--split",
        type=float,
        nargs=3,
        default=(0.7, 0.2, 0.1),
        metavar=("TRAIN", "VALIDATION", "TEST"),
        help="shares of each class in the three parts, summing to 1 (default: 0.7 0.2 0.1)",
    )
    by_file_help = (
        "split files as they are; by default near-duplicate files (one picture at other sizes or "
        "compressions) stay in one part"
    )
    if evaluating:
        by_file_help = "split files as they are; by default the split groups near-duplicates as the model's training did"
    parser.add_argument(
        "--split-by-file",
        dest="group_duplicates",
        action="store_const",
        const=False,
        default=None if evaluating else True,
        help=by_file_help,
    )


def _face_options(arguments: argparse.Namespace) -> Any:
    if not (arguments.faces or arguments.all_faces):
        return None
    if arguments.threshold is not None and not 0.0 <= arguments.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], received {arguments.threshold}.")
    from emodetect.training.workflow import FaceOptions

    return FaceOptions(
        detector=arguments.detector,
        faces="all" if arguments.all_faces else "largest",
        confidence_threshold=arguments.threshold,
        cache_dir=arguments.cache,
    )


def parse_options(items: list[str], architecture: str) -> dict[str, Any]:
    """Parse `--option KEY=VALUE` items and check each key against the architecture builder.

    Values are Python literals (`True`, `0.3`, `128,128`); anything else is kept as a string.

    Raises:
        ValueError: An item has no `=`, or the builder has no parameter of that name.
    """
    import inspect

    from emodetect.training.architectures import ARCHITECTURES

    parameters = inspect.signature(ARCHITECTURES.get(architecture).factory).parameters
    accepted = sorted(name for name in parameters if name != "num_classes")
    options: dict[str, Any] = {}
    for item in items:
        key, separator, text = item.partition("=")
        key = key.strip()
        if not separator or not key:
            raise ValueError(f"Expected --option KEY=VALUE, received {item!r}.")
        if key not in accepted:
            raise ValueError(f"Architecture {architecture!r} has no option {key!r}. Its options are: {', '.join(accepted)}.")
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text
    return options


def _write_json(data: Any, target: Path) -> None:
    text = json.dumps(data, indent=2)
    if str(target) == "-":
        print(text)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text + "\n", encoding="utf-8")


def run_train(arguments: argparse.Namespace) -> int:
    """Handle `emodetect train`."""
    if arguments.out.suffix != ".keras":
        raise ValueError(f"--out must end with '.keras', received '{arguments.out}'.")
    if arguments.epochs < 1 or arguments.batch_size < 1:
        raise ValueError(f"--epochs and --batch-size must be >= 1, received {arguments.epochs} and {arguments.batch_size}.")
    if arguments.option and arguments.base_model:
        raise ValueError("--option sets options of a new architecture and cannot be used with --from.")

    faces = _face_options(arguments)
    options = parse_options(arguments.option, arguments.arch) if arguments.arch else {}

    from emodetect.training.train import TrainingConfig
    from emodetect.training.workflow import summarize, train_from_folder

    learning_rate = arguments.learning_rate
    if learning_rate is None:
        learning_rate = 1e-4 if arguments.base_model else 1e-3
    config = TrainingConfig(
        epochs=arguments.epochs,
        batch_size=arguments.batch_size,
        learning_rate=learning_rate,
        seed=arguments.seed,
        augment=arguments.augment,
        balance_classes=arguments.balance_classes,
        early_stopping_patience=arguments.early_stopping,
        checkpoint=arguments.checkpoint,
        freeze_features=arguments.freeze_features,
    )
    try:
        run = train_from_folder(
            arguments.data_dir,
            architecture=arguments.arch,
            base_model=arguments.base_model,
            config=config,
            architecture_options=options,
            faces=faces,
            crop_margin=arguments.crop_margin,
            fractions=arguments.split,
            group_duplicates=arguments.group_duplicates,
        )
    except FileNotFoundError as error:
        print(f"emodetect: error: {error}", file=sys.stderr)
        return EXIT_FAILED

    metadata = run.result.metadata
    path = run.save(arguments.out)
    counts = run.splits.counts()
    print(f"Faces per part: train {counts['train']}, validation {counts['validation']}, test {counts['test']}")
    if run.test_report is not None:
        print("Test part:")
        print(summarize(run.test_report))
    else:
        print("The test part is empty, so there is no test report.")

    if arguments.plots:
        from emodetect.training.plots import save_training_plots

        for written in save_training_plots(arguments.plots, run.result.history, run.test_report, title=path.stem):
            print(f"Wrote {written}")
    if arguments.json_file:
        _write_json(
            {
                "model": str(path),
                "class_names": metadata.class_names,
                "history": run.result.history,
                "counts": counts,
                "test": run.test_report,
                "skipped": {str(file): reason for file, reason in run.splits.skipped.items()},
            },
            arguments.json_file,
        )
    print(f"Saved {path} (classes {', '.join(metadata.class_names)}; {metadata.extra['training']['epochs_run']} epochs)")
    return EXIT_OK


def run_evaluate(arguments: argparse.Namespace) -> int:
    """Handle `emodetect evaluate`."""
    faces = _face_options(arguments)

    from emodetect.training.workflow import evaluate_folder, summarize

    try:
        report = evaluate_folder(
            arguments.model,
            arguments.data_dir,
            faces=faces,
            subset=arguments.subset,
            fractions=arguments.split,
            seed=arguments.seed,
            group_duplicates=arguments.group_duplicates,
        )
    except FileNotFoundError as error:
        print(f"emodetect: error: {error}", file=sys.stderr)
        return EXIT_FAILED

    report["model"] = str(arguments.model)
    # With '--json -', stdout carries the JSON alone, so the other lines go to stderr.
    json_to_stdout = str(arguments.json_file) == "-"
    if not json_to_stdout:
        print(f"{arguments.model} on {arguments.data_dir} ({arguments.subset}):")
        print(summarize(report))
    if arguments.plots:
        from emodetect.training.plots import plot_confusion_matrix

        title = f"{Path(str(arguments.model)).stem} on {arguments.data_dir.name}"
        written = plot_confusion_matrix(report, arguments.plots / "confusion.png", title=title)
        print(f"Wrote {written}", file=sys.stderr if json_to_stdout else sys.stdout)
    if arguments.json_file:
        _write_json(report, arguments.json_file)
    return EXIT_OK
