"""Reproduce the baseline experiment of "Facial Expression Detection" and record the numbers and figures.

The paper trains a small CNN (256x256x3 input, Conv 16-32-16, Dense 256, one sigmoid unit) on about 300
happy and sad web photos. Its recipe is 20 epochs, batch 32 and Adam 1e-3, with a 70/20/10
train/validation/test split, and it reports a validation accuracy of 1.000. This script runs three
experiments:

    leaky   The paper's own data pipeline: keras.utils.image_dataset_from_directory, then take/skip over its
            batches. The dataset reshuffles its files on every pass, so each epoch's "validation" and the
            final "test" batches hold images that other epochs trained on. The script hashes the pixels of
            every image it feeds and counts how many validation and test images were trained on.
    fixed   The same network and recipe on emodetect's split, made once over files with a seed, for
            several seeds.
    faces   The same again on the largest SSD face crop of each photo (emodetect's --faces), then each model
            evaluated on the FER2013 validation faces of the same two classes.

Usage, from the repository root (SSD weights cached, see `emodetect download --from DIR`):

    python scripts/reproduce_paper.py all
    python scripts/reproduce_paper.py leaky fixed --seeds 0 1 2
    python scripts/reproduce_paper.py faces --seeds 0 1 2 3 4

Each experiment replaces its own section of docs/results/reproduction.json and writes its figures to
docs/figures/.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "paper-happy-sad"
DEFAULT_FER = ROOT.parent / "shared" / "data" / "fer2013" / "val"
RESULTS = ROOT / "docs" / "results" / "reproduction.json"
FIGURES = ROOT / "docs" / "figures"

# The paper's recipe.
EPOCHS = 20
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
IMAGE_SIZE = (256, 256)

logger = logging.getLogger("reproduce_paper")


def run_leaky(data_dir: Path, seed: int, epochs: int) -> dict[str, Any]:
    """Train with the paper's own pipeline and measure how many held-out images it trained on."""
    import keras
    import numpy as np
    import tensorflow as tf

    from emodetect.training.architectures import build_architecture

    keras.utils.set_random_seed(seed)
    # As in the paper: default shuffle=True, which reshuffles the file order on every pass over `data`.
    data = keras.utils.image_dataset_from_directory(
        str(data_dir), image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, seed=seed
    )
    class_names = list(data.class_names)
    batches = int(data.cardinality())
    train_size, val_size, test_size = int(batches * 0.7), int(batches * 0.2), int(batches * 0.1)

    seen: dict[str, list[set[str]]] = {"train": [], "validation": [], "test": []}

    def recorder(part: str):  # type: ignore[no-untyped-def]
        # Hashing each image's pixels identifies the file without changing what the model is fed.
        def record(images: Any, labels: Any) -> Any:
            def store(batch: Any) -> Any:
                seen[part][-1].update(hashlib.sha1(image.tobytes()).hexdigest() for image in batch.numpy())
                return batch

            passed = tf.py_function(store, [images], tf.float32)
            passed.set_shape(images.shape)
            return passed, labels

        return record

    class StartPass(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            seen["train"].append(set())
            seen["validation"].append(set())

    train = data.take(train_size).map(recorder("train"))
    validation = data.skip(train_size).take(val_size).map(recorder("validation"))
    test = data.skip(train_size + val_size).take(test_size).map(recorder("test"))

    built = build_architecture("paper-baseline", 2)  # its first layer scales inputs to [0, 1], like x / 255
    model = built.model
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    started = time.perf_counter()
    history = model.fit(train, validation_data=validation, epochs=epochs, callbacks=[StartPass()], verbose=2)
    seconds = time.perf_counter() - started

    seen["test"].append(set())
    truth, predicted = [], []
    for images, labels in test:
        probabilities = np.asarray(model(images, training=False)).reshape(-1)
        truth.extend(np.asarray(labels).reshape(-1).tolist())
        predicted.extend((probabilities >= 0.5).astype(int).tolist())
    truth_array, predicted_array = np.asarray(truth), np.asarray(predicted)
    true_positive = int(((predicted_array == 1) & (truth_array == 1)).sum())

    # An image was trained on before a validation pass if it was in a training batch of that or an earlier epoch.
    trained_so_far: set[str] = set()
    leaked_per_epoch = []
    for train_pass, validation_pass in zip(seen["train"], seen["validation"]):
        trained_so_far |= train_pass
        leaked_per_epoch.append(len(validation_pass & trained_so_far) / max(len(validation_pass), 1))
    unique_images = len(set().union(*seen["train"], *seen["validation"], *seen["test"]))
    files = sum(1 for path in data_dir.rglob("*") if path.is_file())

    return {
        "seed": seed,
        "files": files,
        "distinct_images_fed": unique_images,
        "batches": batches,
        "take_skip_batches": {"train": train_size, "validation": val_size, "test": test_size},
        "history": {key: [float(value) for value in values] for key, values in history.history.items()},
        "final_val_accuracy": float(history.history["val_accuracy"][-1]),
        "max_val_accuracy": float(max(history.history["val_accuracy"])),
        "validation_images_trained_on_before_the_pass": leaked_per_epoch,
        "distinct_images_in_training_batches": len(trained_so_far),
        "test": {
            "count": int(len(truth_array)),
            "accuracy": float((truth_array == predicted_array).mean()),
            "precision": true_positive / max(int((predicted_array == 1).sum()), 1),
            "recall": true_positive / max(int((truth_array == 1).sum()), 1),
            "positive_class": class_names[1],
            "share_trained_on": len(seen["test"][-1] & trained_so_far) / max(len(seen["test"][-1]), 1),
        },
        "seconds": round(seconds, 1),
    }


def run_fixed(data_dir: Path, seeds: list[int], epochs: int, faces: bool) -> list[dict[str, Any]]:
    """Train the baseline on emodetect's fixed split (photos or face crops), once per seed."""
    from emodetect.training.train import TrainingConfig
    from emodetect.training.workflow import FaceOptions, train_from_folder

    runs = []
    for seed in seeds:
        config = TrainingConfig(epochs=epochs, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, seed=seed)
        run = train_from_folder(
            data_dir,
            architecture="paper-baseline",
            config=config,
            faces=FaceOptions() if faces else None,
        )
        history = run.result.history
        record = {
            "seed": seed,
            "counts": run.splits.counts(),
            "skipped": {str(path.relative_to(data_dir)): reason for path, reason in run.splits.skipped.items()},
            "history": history,
            "final_val_accuracy": history["val_accuracy"][-1],
            "max_val_accuracy": max(history["val_accuracy"]),
            "test": run.test_report,
            "seconds": run.result.metadata.extra["training"]["seconds"],
        }
        runs.append(record)
        logger.info(
            "seed %d: final validation accuracy %.3f, test accuracy %.3f",
            seed,
            record["final_val_accuracy"],
            run.test_report["accuracy"] if run.test_report else float("nan"),
        )
        if faces:
            record["model"] = run.result
    return runs


def evaluate_on_fer(result: Any, fer_dir: Path) -> dict[str, Any]:
    """Evaluate a trained model on the FER2013 validation faces of its classes."""
    from emodetect.training.workflow import evaluate_folder

    report = evaluate_folder((result.model, result.metadata), fer_dir)
    report["data"].pop("skipped", None)
    return report


def summed_report(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a report whose confusion matrix is the sum of several runs' matrices."""
    import numpy as np

    matrix = sum(np.asarray(report["confusion_matrix"]) for report in reports)
    return {"confusion_matrix": matrix.tolist(), "class_names": reports[0]["class_names"]}


def spread(values: list[float]) -> dict[str, float]:
    """Return the minimum, mean and maximum of a list of numbers."""
    return {"min": min(values), "mean": sum(values) / len(values), "max": max(values)}


def write_section(name: str, section: dict[str, Any]) -> None:
    """Replace one experiment's section of the results file, keeping the others."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results[name] = section
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    logger.info("Wrote section %r of %s", name, RESULTS)


def environment(command: str) -> dict[str, Any]:
    """Return what produced the numbers: command, date, machine and library versions."""
    import cv2
    import keras
    import tensorflow as tf

    return {
        "command": command,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs, no GPU",
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "opencv": cv2.__version__},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="+", choices=("leaky", "fixed", "faces", "all"), help="experiments to run")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with happy/ and sad/ photos")
    parser.add_argument("--fer", type=Path, default=DEFAULT_FER, help="FER2013 validation folder (class sub-folders)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds of the fixed splits")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs per run (the paper's: {EPOCHS})")
    arguments = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from emodetect.training.plots import plot_confusion_matrix, plot_history

    experiments = {"leaky", "fixed", "faces"} if "all" in arguments.experiments else set(arguments.experiments)
    seeds_text = " ".join(str(seed) for seed in arguments.seeds)

    if "leaky" in experiments:
        record = run_leaky(arguments.data, seed=arguments.seeds[0], epochs=arguments.epochs)
        record.update(environment(f"python scripts/reproduce_paper.py leaky --seeds {arguments.seeds[0]}"))
        write_section("leaky", record)
        plot_history(record["history"], FIGURES / "paper-leaky-curves.png", title="Paper's pipeline (take/skip, reshuffled)")

    if "fixed" in experiments:
        runs = run_fixed(arguments.data, arguments.seeds, arguments.epochs, faces=False)
        section = {
            **environment(f"python scripts/reproduce_paper.py fixed --seeds {seeds_text}"),
            "runs": runs,
            "final_val_accuracy": spread([run["final_val_accuracy"] for run in runs]),
            "max_val_accuracy": spread([run["max_val_accuracy"] for run in runs]),
            "test_accuracy": spread([run["test"]["accuracy"] for run in runs]),
        }
        write_section("fixed", section)
        plot_history(
            {f"seed {run['seed']}": run["history"] for run in runs},
            FIGURES / "paper-fixed-curves.png",
            title="Fixed split over files, whole photos",
        )
        plot_confusion_matrix(
            summed_report([run["test"] for run in runs]),
            FIGURES / "paper-fixed-confusion.png",
            title=f"Test parts, {len(runs)} seeds summed",
        )

    if "faces" in experiments:
        runs = run_fixed(arguments.data, arguments.seeds, arguments.epochs, faces=True)
        for run in runs:
            run["fer2013_val"] = evaluate_on_fer(run.pop("model"), arguments.fer)
            logger.info("seed %d: FER2013 validation accuracy %.3f", run["seed"], run["fer2013_val"]["accuracy"])
        section = {
            **environment(f"python scripts/reproduce_paper.py faces --seeds {seeds_text}"),
            "runs": runs,
            "final_val_accuracy": spread([run["final_val_accuracy"] for run in runs]),
            "max_val_accuracy": spread([run["max_val_accuracy"] for run in runs]),
            "test_accuracy": spread([run["test"]["accuracy"] for run in runs]),
            "fer2013_val_accuracy": spread([run["fer2013_val"]["accuracy"] for run in runs]),
            "fer2013_val_balanced_accuracy": spread([run["fer2013_val"]["balanced_accuracy"] for run in runs]),
        }
        write_section("faces", section)
        plot_history(
            {f"seed {run['seed']}": run["history"] for run in runs},
            FIGURES / "paper-faces-curves.png",
            title="Fixed split over files, largest SSD face crop",
        )
        plot_confusion_matrix(
            summed_report([run["test"] for run in runs]),
            FIGURES / "paper-faces-confusion.png",
            title=f"Face crops, test parts, {len(runs)} seeds summed",
        )
        plot_confusion_matrix(
            summed_report([run["fer2013_val"] for run in runs]),
            FIGURES / "paper-faces-on-fer-val-confusion.png",
            title=f"FER2013 validation faces, {len(runs)} models summed",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
