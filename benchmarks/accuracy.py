"""Measure every shipped classifier and the `fer` package's model on the same faces, in one run.

Usage (from the repository root, with the data at ../shared/data):

    python benchmarks/accuracy.py
    python benchmarks/accuracy.py --fer-python benchmarks/.venv-fer/bin/python --out docs/results

Face sets:

- FER2013 validation faces (48x48 greyscale, already cropped): happy vs sad, all seven expressions, and the
  six expressions without disgust. These faces were never used for training, model selection or calibration.
- The labelled web photos of `paper-happy-sad`: stock photos, group photos and drawings, one label per photo.
  OpenCV's ResNet-10 SSD finds the faces, and the largest face of each photo is cropped with a margin of
  0.02, the shipped models' crop margin. The crop carries the photo's label. Photos without a detected face
  are counted and left out.

Each shipped model is also scored with horizontal-flip test-time averaging (rows named `NAME + flip`): the
mean of its probabilities for the crop and for its mirror image, at twice the cost. A model is scored on a
face set when it has every class of the set. A model with more classes is restricted
to the set's classes and its probabilities are renormalised over them, so happy vs sad is read from the
seven-class models by comparing their happy and sad probabilities.

The `fer` package (its bundled mini-Xception, `fer/data/emotion_model.hdf5`) runs in its own virtual
environment through a subprocess, on the same crops: greyscale, resized to its 64x64 input, scaled to
[-1, 1] as `fer` does. Like emodetect's classifiers, it runs inside a `tf.function`. Speed is the number of
faces per second at batch 64, best of five rounds that take the emodetect models in turn, with the load
average printed beside it because the machine may be shared. The `fer` model is timed the same way in its
own process right after them. It includes emodetect's `prepare_faces` for the shipped models and the scaling to
[-1, 1] for `fer`, whose resize to 64x64 happens before timing.

Writes `accuracy.json` and `accuracy.md` into `--out` and prints the Markdown.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from emodetect.calibration import apply_temperature  # noqa: E402
from emodetect.images import crop_face, read_image  # noqa: E402
from emodetect.metrics import classification_report, expected_calibration_error  # noqa: E402
from emodetect.training.data import list_image_folder  # noqa: E402

logger = logging.getLogger("accuracy")

SEVEN = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
FER_PACKAGE_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
"""Output order of `fer/data/emotion_model.hdf5`, as the `fer` package labels it."""
FER_PACKAGE_INPUT = (64, 64)
SPEED_BATCH = 64
SPEED_FACES = 2048
SPEED_ROUNDS = 5

FER_WORKER = r"""
import sys, time, json
import numpy as np
import keras, fer, os
import tensorflow as tf
faces_path, out_path, batch, rounds, speed_faces = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
model_path = os.path.join(os.path.dirname(fer.__file__), "data", "emotion_model.hdf5")
model = keras.models.load_model(model_path, compile=False)
forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
faces = np.load(faces_path)
def run(chunk):
    x = chunk.astype("float32") / 255.0
    x = (x - 0.5) * 2.0
    return forward(x[..., None]).numpy()
probabilities = np.concatenate([run(faces[i:i + batch]) for i in range(0, len(faces), batch)])
speed_set = faces[:speed_faces]
run(speed_set[:batch])
best = 0.0
for _ in range(rounds):
    start = time.perf_counter()
    for i in range(0, len(speed_set), batch):
        run(speed_set[i:i + batch])
    best = max(best, len(speed_set) / (time.perf_counter() - start))
np.save(out_path, probabilities)
print(json.dumps({"faces_per_second": best, "fer_version": getattr(fer, "__version__", "unknown"),
                  "keras_version": keras.__version__, "params": int(model.count_params()),
                  "size_bytes": os.path.getsize(model_path)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder with fer2013/ and paper-happy-sad/")
    parser.add_argument("--fer-python", type=Path, default=ROOT / "benchmarks" / ".venv-fer" / "bin" / "python", help="Python of a virtual environment where `import fer` works; the fer row is left out when it is missing")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results", help="folder that receives accuracy.json and accuracy.md")
    parser.add_argument("--models", nargs="*", default=None, help="shipped model names (default: all) or .keras paths")
    parser.add_argument("--no-flip-average", dest="flip_average", action="store_false", help="leave out the rows that average each model over the crop and its mirror image")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    face_sets = load_face_sets(arguments.data)
    all_crops, offsets = concatenate_crops(face_sets)

    models: dict[str, dict[str, Any]] = {}
    predictions: dict[str, np.ndarray] = {}
    unscaled: dict[str, np.ndarray] = {}
    from emodetect.classifiers import create_classifier
    from emodetect.classifiers.keras_model import SHIPPED_MODELS, shipped_model_path

    speed_crops = face_sets["fer2013-val-seven"]["crops"]
    classify_functions: dict[str, Callable[[list[np.ndarray]], np.ndarray]] = {}
    for name in arguments.models or list(SHIPPED_MODELS):
        classifier = create_classifier(name)
        path = Path(name) if name.endswith(".keras") else shipped_model_path(name)
        temperature = float(classifier.metadata.temperature)
        description = {
            "kind": "emodetect",
            "classes": list(classifier.class_names),
            "temperature": temperature,
            "size_mb": round(path.stat().st_size / 1e6, 3),
            "params": int(classifier.model.count_params()),
        }
        logger.info("Classifying %d faces with %s", len(all_crops), name)
        direct = classifier.predict_proba(all_crops)
        predictions[name] = direct
        unscaled[name] = apply_temperature(direct, 1.0 / temperature)
        models[name] = description
        classify_functions[name] = classifier.predict_proba

        if arguments.flip_average:
            flipped_name = f"{name} + flip"
            mirrored = classifier.predict_proba([cv2.flip(crop, 1) for crop in all_crops])
            predictions[flipped_name] = (direct + mirrored) / 2.0
            unscaled[flipped_name] = (unscaled[name] + apply_temperature(mirrored, 1.0 / temperature)) / 2.0
            models[flipped_name] = {**description, "kind": "emodetect, flip-averaged at test time"}
            classify_functions[flipped_name] = lambda crops, classify=classifier.predict_proba: flip_average(classify, crops)

    if classify_functions:
        speeds = measure_speeds(classify_functions, speed_crops)
        for name, faces_per_second in speeds.items():
            models[name].update(faces_per_second=faces_per_second, load_average=os.getloadavg()[0])

    if arguments.fer_python.is_file():
        probabilities, info = run_fer_package(arguments.fer_python, all_crops)
        predictions["fer"] = unscaled["fer"] = probabilities
        models["fer"] = {"kind": "fer package", "classes": FER_PACKAGE_CLASSES, "temperature": 1.0, **info}
    else:
        logger.warning("No Python at '%s', so the fer package's model is left out. Pass --fer-python.", arguments.fer_python)

    reference = next(iter(models))
    for name, info in models.items():
        info["speed_vs_" + reference] = round(info["faces_per_second"] / models[reference]["faces_per_second"], 3)

    results: dict[str, dict[str, Any]] = {}
    for set_name, face_set in face_sets.items():
        start, stop = offsets[set_name]
        results[set_name] = {}
        for name, probabilities in predictions.items():
            classes = face_set["classes"]
            if not set(classes) <= set(models[name]["classes"]):
                continue
            report = classification_report(face_set["labels"], restrict(probabilities[start:stop], models[name]["classes"], classes), classes)
            at_one = restrict(unscaled[name][start:stop], models[name]["classes"], classes)
            report["expected_calibration_error_at_temperature_1"] = expected_calibration_error(at_one, face_set["labels"])
            results[set_name][name] = report

    document = {
        "command": "python benchmarks/accuracy.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "face_sets": {name: {key: face_set[key] for key in ("description", "classes", "count", "skipped")} for name, face_set in face_sets.items()},
        "models": models,
        "speed_reference": reference,
        "results": results,
    }
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "accuracy.json").write_text(json.dumps(document, indent=2) + "\n")
    markdown = render_markdown(document)
    (arguments.out / "accuracy.md").write_text(markdown)
    print(markdown)
    return 0


def load_face_sets(data: Path) -> dict[str, dict[str, Any]]:
    """Read the FER2013 validation faces and crop the largest SSD face of each labelled web photo."""
    val = list_image_folder(data / "fer2013" / "val", SEVEN)
    seven_crops = [read_image(path) for path in val.files]
    seven_labels = np.asarray(val.labels)

    def subset(classes: Sequence[str]) -> tuple[list[np.ndarray], np.ndarray]:
        keep = [index for index, label in enumerate(seven_labels) if SEVEN[label] in classes]
        labels = np.asarray([classes.index(SEVEN[seven_labels[index]]) for index in keep])
        return [seven_crops[index] for index in keep], labels

    happy_sad_crops, happy_sad_labels = subset(["happy", "sad"])
    six = [name for name in SEVEN if name != "disgust"]
    six_crops, six_labels = subset(six)
    paper_crops, paper_labels, paper_skipped = crop_paper_photos(data / "paper-happy-sad")

    def entry(description: str, classes: list[str], crops: list[np.ndarray], labels: np.ndarray, skipped: int = 0) -> dict[str, Any]:
        return {"description": description, "classes": classes, "crops": crops, "labels": labels, "count": len(crops), "skipped": skipped}

    return {
        "fer2013-val-happy-sad": entry("FER2013 validation faces, happy and sad", ["happy", "sad"], happy_sad_crops, happy_sad_labels),
        "fer2013-val-seven": entry("FER2013 validation faces, seven expressions", list(SEVEN), seven_crops, seven_labels),
        "fer2013-val-six": entry("FER2013 validation faces without disgust, six expressions (probabilities renormalised over them)", six, six_crops, six_labels),
        "paper-photos-happy-sad": entry(
            "Web photos of paper-happy-sad, largest SSD face per photo (confidence >= 0.5, crop margin 0.02), labelled with the photo's label",
            ["happy", "sad"],
            paper_crops,
            paper_labels,
            paper_skipped,
        ),
    }


def crop_paper_photos(folder: Path, margin: float = 0.02) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Detect faces in each labelled photo and crop the largest one.

    Returns:
        The crops, their labels (0 happy, 1 sad), and the number of photos with no face or no decodable image.
    """
    from emodetect.detectors import create_detector
    from emodetect.errors import ImageReadError

    detector = create_detector("ssd", confidence_threshold=0.5)
    photos = list_image_folder(folder, ["happy", "sad"])
    crops: list[np.ndarray] = []
    labels: list[int] = []
    skipped = 0
    for path, label in zip(photos.files, photos.labels):
        try:
            image = read_image(path)
        except ImageReadError:
            skipped += 1
            continue
        detections = detector.detect(image)
        if len(detections) == 0:
            skipped += 1
            continue
        boxes = detections.boxes
        largest = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
        crops.append(crop_face(image, boxes[largest], margin))
        labels.append(int(label))
    logger.info("Cropped %d faces from %d photos (%d without a face)", len(crops), len(photos.files), skipped)
    return crops, np.asarray(labels), skipped


def concatenate_crops(face_sets: dict[str, dict[str, Any]]) -> tuple[list[np.ndarray], dict[str, tuple[int, int]]]:
    """Put every face set's crops into one list, so each model classifies them in one call."""
    crops: list[np.ndarray] = []
    offsets: dict[str, tuple[int, int]] = {}
    for name, face_set in face_sets.items():
        offsets[name] = (len(crops), len(crops) + len(face_set["crops"]))
        crops.extend(face_set["crops"])
    return crops, offsets


def restrict(probabilities: np.ndarray, model_classes: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Keep the columns of `classes`, in that order, and renormalise each row over them."""
    columns = [list(model_classes).index(name) for name in classes]
    kept = np.asarray(probabilities, dtype=np.float64)[:, columns]
    return kept / np.clip(kept.sum(axis=1, keepdims=True), 1e-12, None)


def measure_speeds(functions: dict[str, Callable[[list[np.ndarray]], np.ndarray]], crops: Sequence[np.ndarray]) -> dict[str, float]:
    """Return each function's best faces-per-second rate over several rounds of batches of 64 crops.

    The rounds take the functions in turn, so a burst of load from other processes slows every function
    alike and the ratios between them stay comparable.
    """
    faces = list(crops[:SPEED_FACES])
    best = dict.fromkeys(functions, 0.0)
    for classify in functions.values():
        classify(faces[:SPEED_BATCH])
    for _ in range(SPEED_ROUNDS):
        for name, classify in functions.items():
            start = time.perf_counter()
            for offset in range(0, len(faces), SPEED_BATCH):
                classify(faces[offset : offset + SPEED_BATCH])
            best[name] = max(best[name], len(faces) / (time.perf_counter() - start))
    return {name: round(rate, 1) for name, rate in best.items()}


def run_fer_package(python: Path, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:
    """Classify the crops with the `fer` package's model in its own environment.

    Returns:
        `(N, 7)` probabilities in `FER_PACKAGE_CLASSES` order and the model's size, speed and versions.

    Raises:
        RuntimeError: The subprocess failed; the message carries its last output lines.
    """
    faces = np.stack([cv2.resize(to_grey(crop), FER_PACKAGE_INPUT) for crop in crops])
    with tempfile.TemporaryDirectory(prefix="emodetect-accuracy-") as folder:
        faces_path, out_path = Path(folder) / "faces.npy", Path(folder) / "probabilities.npy"
        np.save(faces_path, faces)
        logger.info("Classifying %d faces with the fer package's model (%s)", len(faces), python)
        completed = subprocess.run(
            [str(python), "-c", FER_WORKER, str(faces_path), str(out_path), str(SPEED_BATCH), str(SPEED_ROUNDS), str(SPEED_FACES)],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-15:])
            raise RuntimeError(f"The fer package's model failed in '{python}' (exit code {completed.returncode}):\n{tail}")
        probabilities = np.load(out_path)
    info = json.loads(completed.stdout.strip().splitlines()[-1])
    return probabilities, {
        "size_mb": round(info.pop("size_bytes") / 1e6, 3),
        "faces_per_second": round(info.pop("faces_per_second"), 1),
        "load_average": os.getloadavg()[0],
        **info,
    }


def flip_average(classify: Callable[[list[np.ndarray]], np.ndarray], crops: Sequence[np.ndarray]) -> np.ndarray:
    """Average the probabilities of each crop and of its horizontal mirror image."""
    return (classify(list(crops)) + classify([cv2.flip(crop, 1) for crop in crops])) / 2.0


def to_grey(crop: np.ndarray) -> np.ndarray:
    """Return a greyscale `uint8` copy of a BGR or greyscale crop."""
    return crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)


def machine_description() -> dict[str, Any]:
    """Describe the CPU and software the numbers were measured with."""
    import tensorflow as tf

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "opencv": cv2.__version__,
    }


def render_markdown(document: dict[str, Any]) -> str:
    """Render the results as Markdown tables: a summary per face set, then per-class figures and confusion matrices.

    The text has no top-level heading and its sections are `###`, so a docs page can include it under a
    `##` heading of its own.
    """
    models = document["models"]
    reference = document["speed_reference"]
    machine = document["machine"]
    lines = [
        f"Measured with `{document['command']}` on {document['date']}, {machine['cpu']} ({machine['cores']} cores), "
        f"TensorFlow {machine['tensorflow']}, OpenCV {machine['opencv']}. `fer` is the `fer` package's bundled "
        "mini-Xception, run on the same crops. ECE is the expected calibration error (15 bins) of the top class, "
        "at temperature 1 and at the temperature stored in the model.",
        "",
        "### Models",
        "",
        f"| Model | Classes | Size (MB) | Parameters | Temperature | Faces/s at batch 64 | Speed vs {reference} | Load average |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, info in models.items():
        lines.append(
            f"| {name} | {len(info['classes'])} | {info['size_mb']:.2f} | {info.get('params', 0):,} | "
            f"{info['temperature']:.3f} | {info['faces_per_second']:.0f} | {info['speed_vs_' + reference]:.2f} | {info['load_average']:.1f} |"
        )

    for set_name, by_model in document["results"].items():
        face_set = document["face_sets"][set_name]
        skipped = f", {face_set['skipped']} photos without a detected face left out" if face_set["skipped"] else ""
        lines += [
            "",
            f"### {face_set['description']}",
            "",
            f"{face_set['count']} faces{skipped}.",
            "",
            "| Model | Balanced accuracy | Accuracy | Macro F1 | ECE at T=1 | ECE at stored T |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, report in by_model.items():
            lines.append(
                f"| {name} | **{report['balanced_accuracy']:.3f}** | {report['accuracy']:.3f} | {report['macro_f1']:.3f} | "
                f"{report['expected_calibration_error_at_temperature_1']:.3f} | {report['expected_calibration_error']:.3f} |"
            )
        classes = face_set["classes"]
        lines += ["", "Precision / recall per class:", "", "| Model | " + " | ".join(classes) + " |", "| --- |" + " --- |" * len(classes)]
        for name, report in by_model.items():
            cells = [f"{report['per_class'][c]['precision']:.2f} / {report['per_class'][c]['recall']:.2f}" for c in classes]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for name, report in by_model.items():
            lines += ["", f"Confusion matrix of {name} (rows: true class, columns: predicted class):", "", "| | " + " | ".join(classes) + " |", "| --- |" + " --- |" * len(classes)]
            for true_name, row in zip(classes, report["confusion_matrix"]):
                lines.append(f"| **{true_name}** | " + " | ".join(str(value) for value in row) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
