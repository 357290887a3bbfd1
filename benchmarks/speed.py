"""Measure emodetect's speed and memory against the `fer` package on the same real frames, in one run.

Usage, from the repository root, with the shared data folder at ../shared (or named by EMODETECT_SHARED):

    .venv/bin/python benchmarks/speed.py                      # full run, writes docs/results/speed.md
    .venv/bin/python benchmarks/speed.py --long-frames 300    # shorter memory run while developing
    .venv/bin/python benchmarks/speed.py --no-fer             # emodetect alone

What it measures, for emodetect (SSD detector, shipped happy-sad classifier) and for `fer`'s default path
(`FER()`: OpenCV's Haar cascade, then its mini-XCEPTION model run by TensorFlow Lite):

- latency of one 640x480 frame, detect + classify, median and 95th percentile: frames with one face and
  frames with three faces, cut from real photos by a window that pans and zooms;
- emodetect's video path (`Pipeline.stream()`, the per-frame step of `process_video`) over the same frames
  in order, with how closely its faces match a full scan of every frame;
- throughput on a folder of real photos of mixed sizes, decoding included;
- classifier throughput on real face crops, one face per call and 64 faces per call;
- peak resident memory of each process;
- emodetect's resident memory at the start and the end of a long video run through
  `Pipeline.process_video` (3,000 frames by default), which must not grow with the frame count.

`fer` runs in its own virtual environment (benchmarks/.venv-fer, created on first use with the same
TensorFlow and OpenCV versions as this environment) as a worker process that receives one command at a time
on standard input. The two sides take turns, scenario by scenario, for several rounds, so both see the same
load on a shared machine. Each ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMODETECT_SHARED", ROOT.parent / "shared"))
FER_VERSION = "25.10.3"
FRAME_SIZE = (640, 480)  # (width, height)
ONE_FACE_PHOTO = "happy/happy-person.jpeg"
ONE_FACE_BOX = (430, 151, 647, 451)  # The SSD's face box in that photo, (x1, y1, x2, y2).
GROUP_PHOTO = "happy/1-2.jpg"
GROUP_FACES_BOX = (82, 24, 497, 192)  # The box around the SSD's three face boxes in that photo.
SMALL_SSD_INPUT = (240, 180)  # (width, height): the 4:3 SSD input of the variant measured for comparison.
# Each variant measured on emodetect alone is compared with this scenario of fer's.
REFERENCE_SCENARIO = {
    "one_face_small_input": "one_face",
    "group_small_input": "group",
    "one_face_stream": "one_face",
    "group_stream": "group",
    "classifier_1_predict": "classifier_1",
}
# Scenarios whose frames cost unequal amounts by design (full scans between region scans), so that their
# throughput and fer's are compared by the mean time per frame instead of the median.
MEAN_SCENARIOS = {"one_face_stream", "group_stream"}


# ---------------------------------------------------------------------------------------------------------
# Helpers shared by both sides. They use only the standard library, NumPy and OpenCV, because the fer worker
# runs this file in an environment without emodetect.


def resident_memory_mib(field: str = "VmRSS") -> float:
    """Return a field of /proc/self/status in MiB: `VmRSS` (current) or `VmHWM` (peak) resident memory."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"/proc/self/status has no {field} line. This benchmark needs Linux.")


def time_calls(function: Callable[[Any], Any], items: list[Any]) -> list[float]:
    """Call `function` on each item and return each call's wall-clock time in milliseconds."""
    times = []
    for item in items:
        started = time.perf_counter()
        function(item)
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def latency_summary(times: list[float]) -> dict[str, float]:
    """Return the median, mean and 95th percentile of call times in milliseconds."""
    return {"median_ms": float(np.median(times)), "mean_ms": float(np.mean(times)), "p95_ms": float(np.percentile(times, 95))}


def load_frames(path: Path) -> dict[str, Any]:
    """Load the frames, crops and photo list that the main process saved for the worker."""
    with np.load(path, allow_pickle=False) as archive:
        one_face = list(archive["one_face"])
        group = list(archive["group"])
        crops = [archive[f"crop_{index}"] for index in range(int(archive["crop_count"]))]
        photos = [str(photo) for photo in archive["photos"]]
    return {"one_face": one_face, "group": group, "crops": crops, "photos": photos}


# ---------------------------------------------------------------------------------------------------------
# The fer side: a worker process in fer's own environment.


def run_fer_worker(data_path: Path) -> int:
    """Serve measurement commands for `fer` on standard input, one JSON object per line, until end of input."""
    # Replies go to the original standard output. Anything that fer, TensorFlow or Keras prints goes to
    # standard error, so that a stray line cannot break the one-reply-per-line protocol.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    from fer.fer import FER

    data = load_frames(data_path)
    detector = FER()
    # FER keeps its model private, so classification is timed through the step that detect_emotions runs.
    classify = detector._classify_emotions
    target_size = (64, 64)

    def classify_crops(crops: list[np.ndarray]) -> Any:
        # The same steps detect_emotions runs on each face: greyscale, resize to 64x64, scale to [-1, 1].
        grey = [cv2.resize(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), target_size) for crop in crops]
        batch = (np.asarray(grey, dtype=np.float32) / 255.0 - 0.5) * 2.0
        return classify(batch)

    for frame in data["one_face"][:5]:
        detector.detect_emotions(frame)
    classify_crops(data["crops"][:64])
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()

    for line in sys.stdin:
        command = json.loads(line)
        reply = run_command(
            command,
            data,
            detect=lambda frame: len(detector.detect_emotions(frame)),
            read_and_detect=lambda path: len(detector.detect_emotions(cv2.imread(path))),
            classify_crops=classify_crops,
        )
        reply["peak_mib"] = resident_memory_mib("VmHWM")
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    return 0


def run_command(
    command: dict[str, Any],
    data: dict[str, Any],
    detect: Callable[[np.ndarray], int],
    read_and_detect: Callable[[str], int],
    classify_crops: Callable[[list[np.ndarray]], Any],
) -> dict[str, Any]:
    """Run one measurement on either side and return its figures."""
    kind = command["kind"]
    if kind in ("one_face", "group"):
        frames = data[kind]
        faces = [detect(frame) for frame in frames[:3]]
        times = time_calls(detect, frames)
        return {**latency_summary(times), "faces_per_frame": float(np.mean(faces))}
    if kind == "photos":
        started = time.perf_counter()
        faces = sum(read_and_detect(path) for path in data["photos"])
        seconds = time.perf_counter() - started
        return {"images_per_s": len(data["photos"]) / seconds, "faces": faces}
    if kind == "classifier":
        batch = int(command["batch"])
        crops = data["crops"]
        batches = [[crops[(start + offset) % len(crops)] for offset in range(batch)] for start in range(command["calls"])]
        times = time_calls(classify_crops, batches)
        return {"faces_per_s": batch * 1000.0 / float(np.median(times))}
    raise ValueError(f"Unknown command kind {kind!r}.")


class FerWorker:
    """The fer worker process, driven from the main process."""

    def __init__(self, python: Path, data_path: Path, log_path: Path) -> None:
        self._log = log_path.open("w", encoding="utf-8")
        self._process = subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), "--fer-worker", str(data_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"},
        )
        # Wait until the worker has loaded and warmed up, so that its start does not slow the first measurement.
        self._read_reply()

    def _read_reply(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"The fer worker stopped. Its log is {self._log.name}.")
        return json.loads(line)

    def measure(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        return self._read_reply()

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=60)
        self._log.close()


def ensure_fer_environment(venv: Path) -> Path:
    """Create or update the fer environment with this environment's TensorFlow and OpenCV versions.

    Returns:
        The environment's Python interpreter.
    """
    from importlib.metadata import version

    python = venv / "bin" / "python"
    if not python.exists():
        print(f"Creating {venv} for fer", file=sys.stderr)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    # fer's declared dependencies include PyTorch for its MTCNN option, which the Haar path does not need.
    subprocess.run([*pip, "--no-deps", f"fer=={FER_VERSION}"], check=True)
    subprocess.run(
        [
            *pip,
            "requests",
            "setuptools<81",
            "pillow",
            f"tensorflow=={version('tensorflow')}",
            f"opencv-python=={version('opencv-python')}",
            f"numpy=={version('numpy')}",
        ],
        check=True,
    )
    return python


# ---------------------------------------------------------------------------------------------------------
# The emodetect side and the inputs.


def pan_and_zoom(image: np.ndarray, count: int, zoom: float, face: tuple[int, int, int, int]) -> list[np.ndarray]:
    """Cut `count` 640x480 frames from a photo with a 4:3 window that zooms in by up to `zoom` and pans.

    The window stays around `face`, an `(x1, y1, x2, y2)` box that contains every face of the photo, so every
    frame shows the same faces whole.
    """
    height, width = image.shape[:2]
    centre_x, centre_y = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    frames = []
    for step in range(count):
        window_height = int(min(height, width * 3 / 4) / (1.0 + zoom * step / max(1, count - 1)))
        window_width = window_height * 4 // 3
        # Pan from left to right by up to the free space beside the faces.
        free = max(0.0, (window_width - (face[2] - face[0])) / 2 * 0.8)
        left = int(centre_x - window_width / 2 + free * (2 * step / max(1, count - 1) - 1))
        top = int(centre_y - window_height / 2)
        left = min(max(left, 0), width - window_width)
        top = min(max(top, 0), height - window_height)
        window = image[top : top + window_height, left : left + window_width]
        frames.append(cv2.resize(window, FRAME_SIZE, interpolation=cv2.INTER_AREA))
    return frames


def prepare_inputs(pipeline: Any, photos_dir: Path, frame_count: int, photo_count: int) -> dict[str, Any]:
    """Build the frames, face crops and photo list that both sides measure on."""
    from emodetect.errors import ImageReadError
    from emodetect.images import crop_face, read_image

    one_face = pan_and_zoom(read_image(photos_dir / ONE_FACE_PHOTO), frame_count, zoom=0.5, face=ONE_FACE_BOX)
    group = pan_and_zoom(read_image(photos_dir / GROUP_PHOTO), frame_count, zoom=0.15, face=GROUP_FACES_BOX)

    all_photos = []
    for path in sorted(photos_dir.rglob("*")):
        try:
            read_image(path)
        except (ImageReadError, IsADirectoryError):
            # A few files are truncated or not images, so both sides get only the readable ones.
            continue
        all_photos.append(path)
    step = max(1, len(all_photos) // photo_count)
    photos = all_photos[::step][:photo_count]

    # Face crops: the SSD's faces in the frames, cut as the pipeline cuts them, so they have the sizes of
    # faces in a 640x480 video.
    crops: list[np.ndarray] = []
    for frame in one_face + group:
        for box in pipeline.detector.detect(frame).boxes:
            crops.append(crop_face(frame, box, pipeline.classifier.crop_margin))
    return {"one_face": one_face, "group": group, "crops": crops, "photos": [str(path) for path in photos]}


def save_inputs(inputs: dict[str, Any], path: Path) -> None:
    arrays = {f"crop_{index}": crop for index, crop in enumerate(inputs["crops"])}
    np.savez(
        path,
        one_face=np.stack(inputs["one_face"]),
        group=np.stack(inputs["group"]),
        crop_count=np.array(len(inputs["crops"])),
        photos=np.array(inputs["photos"]),
        **arrays,
    )


def emodetect_callables(pipeline: Any) -> dict[str, Callable[..., Any]]:
    """Return the emodetect counterparts of fer's calls: a frame scanned whole and classified, photos, crops."""

    def detect(frame: np.ndarray) -> int:
        detections = pipeline.detector.detect(frame)
        return len(pipeline.classify([frame], [detections])[0])

    def read_and_detect(path: str) -> int:
        return len(pipeline(path))

    return {"detect": detect, "read_and_detect": read_and_detect, "classify_crops": pipeline.classifier.predict_proba}


def measure_stream(pipeline: Any, frames: list[np.ndarray]) -> dict[str, Any]:
    """Time `Pipeline.stream()` with its defaults over the frames in order, as `process_video` runs them.

    Besides the times, it reports how closely the faces match a full scan of every frame: faces per frame,
    and the mean over faces of the IoU between each full-scan box and its best-matching stream box.
    """
    from emodetect.tracking import box_iou

    stream = pipeline.stream()
    results = []
    times = []
    for index, frame in enumerate(frames):
        started = time.perf_counter()
        results.append(stream.process(frame, index / 30.0))
        times.append((time.perf_counter() - started) * 1000.0)

    overlaps = []
    for frame, result in zip(frames, results):
        reference = pipeline.detector.detect(frame)
        if len(reference):
            best = box_iou(reference.boxes, result.boxes).max(axis=1) if len(result) else np.zeros(len(reference))
            overlaps.extend(best.tolist())
    return {
        **latency_summary(times),
        "faces_per_frame": float(np.mean([len(result) for result in results])),
        "mean_iou_with_full_scan": float(np.mean(overlaps)) if overlaps else 0.0,
        "full_scans": stream.scans.full,
        "region_scans": stream.scans.region,
    }


def measure_variants(
    pipeline: Any, small_input_pipeline: Any, inputs: dict[str, Any], classifier_calls: int
) -> dict[str, dict[str, Any]]:
    """Measure emodetect's video path and two variants that are not defaults, for comparison.

    - `Pipeline.stream()` on the frames in order: the per-frame work of `process_video`, which scans every
      5th frame whole and only a region around the previous faces in between.
    - `small_input_pipeline`, whose SSD has a 240x180 input, on the same frames: the speed that the
      `input_size` option buys for 4:3 video whose faces are large.
    - The classifier through Keras's `Model.predict` at batch 1, which `predict_proba` avoids.
    """
    from emodetect.classifiers.keras_model import outputs_to_probabilities
    from emodetect.images import prepare_faces

    small = emodetect_callables(small_input_pipeline)
    classifier = pipeline.classifier

    def classify_with_predict(crops: list[np.ndarray]) -> np.ndarray:
        batch = prepare_faces(crops, classifier.metadata.input_size, classifier.metadata.color_mode)
        return outputs_to_probabilities(classifier.model.predict(batch, verbose=0), classifier.metadata)

    results = {
        "one_face_stream": measure_stream(pipeline, inputs["one_face"]),
        "group_stream": measure_stream(pipeline, inputs["group"]),
        "one_face_small_input": run_command({"kind": "one_face"}, inputs, **small),
        "group_small_input": run_command({"kind": "group"}, inputs, **small),
    }
    callables = {**small, "classify_crops": classify_with_predict}
    results["classifier_1_predict"] = run_command(
        {"kind": "classifier", "batch": 1, "calls": max(5, classifier_calls // 4)}, inputs, **callables
    )
    return results


def write_long_video(frames: list[np.ndarray], path: Path, frame_count: int) -> None:
    """Write `frame_count` frames, cycling through `frames` forth and back, as an MPEG-4 file."""
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, FRAME_SIZE)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} with the mp4v codec.")
    cycle = frames + frames[-2:0:-1]
    for index in range(frame_count):
        writer.write(cycle[index % len(cycle)])
    writer.release()


def measure_long_run(pipeline: Any, frames: list[np.ndarray], frame_count: int, folder: Path) -> dict[str, Any]:
    """Run `process_video` over a long file with every output on, sampling resident memory every 100 frames."""
    source = folder / "long.mp4"
    write_long_video(frames, source, frame_count)
    samples: list[tuple[int, float]] = []

    def sample(frames_read: int, _total: Optional[int]) -> None:
        if frames_read % 100 == 0:
            samples.append((frames_read, resident_memory_mib()))

    processor = pipeline.process_video(
        source, output=folder / "long-annotated.mp4", csv_path=folder / "long.csv", progress=sample
    )
    processor.run()
    # The first 100 frames warm up TensorFlow and OpenCV's buffers, so memory is compared from frame 100 on.
    start_frame, start_mib = samples[0]
    end_frame, end_mib = samples[-1]
    growth = (end_mib - start_mib) / max(1, end_frame - start_frame) * 1000.0
    return {
        "frames": processor.stats.frames_read,
        "faces": processor.stats.faces,
        "frames_per_s": processor.stats.frames_read / processor.stats.seconds,
        "rss_start_mib": start_mib,
        "rss_start_frame": start_frame,
        "rss_end_mib": end_mib,
        "rss_end_frame": end_frame,
        "growth_mib_per_1000_frames": growth,
    }


# ---------------------------------------------------------------------------------------------------------
# The run and its report.


def scenarios(frame_count: int, classifier_calls: int) -> list[dict[str, Any]]:
    return [
        {"kind": "one_face"},
        {"kind": "group"},
        {"kind": "photos"},
        {"kind": "classifier", "batch": 1, "calls": classifier_calls},
        {"kind": "classifier", "batch": 64, "calls": max(5, classifier_calls // 10)},
    ]


def scenario_key(command: dict[str, Any]) -> str:
    return f"classifier_{command['batch']}" if command["kind"] == "classifier" else command["kind"]


def throughput(figures: dict[str, Any], mean: bool = False) -> float:
    """Return a scenario's throughput: frames, images or faces per second.

    Frame rates come from the median time per frame, or from the mean time when `mean` is true.
    """
    if "median_ms" in figures:
        return 1000.0 / (figures["mean_ms"] if mean else figures["median_ms"])
    return figures.get("images_per_s") or figures["faces_per_s"]


def summarise(rounds: list[dict[str, dict[str, Any]]], side: str) -> dict[str, dict[str, float]]:
    """Return the median over rounds of each figure of one side."""
    summary: dict[str, dict[str, float]] = {}
    for key in rounds[0][side]:
        figures = [round_[side][key] for round_ in rounds]
        summary[key] = {name: float(np.median([figure[name] for figure in figures])) for name in figures[0]}
    return summary


def ratio_summary(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, float]:
    """Return, per scenario, the median over rounds of emodetect's throughput divided by fer's."""
    ratios = {}
    for key in rounds[0]["emodetect"]:
        reference = REFERENCE_SCENARIO.get(key, key)
        mean = key in MEAN_SCENARIOS
        per_round = [
            throughput(round_["emodetect"][key], mean) / throughput(round_["fer"][reference], mean) for round_ in rounds
        ]
        ratios[key] = float(np.median(per_round))
    return ratios


def machine_description() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs, Linux {platform.release()}"


def format_report(results: dict[str, Any]) -> str:
    """Return the Markdown table and notes of one run."""
    ours, theirs, ratios = results["emodetect"], results.get("fer"), results.get("ratios", {})

    def cell(side: Optional[dict[str, Any]], key: str, name: str, digits: int = 1) -> str:
        if side is None or key not in side:
            return "-"
        return f"{side[key][name]:,.{digits}f}"

    def ratio(key: str) -> str:
        return f"{ratios[key]:.1f}x" if key in ratios else "-"

    def pair(side: dict[str, Any], key: str) -> str:
        return f"{side[key]['median_ms']:.1f} / {side[key]['p95_ms']:.1f}"

    def agreement(key: str) -> str:
        return f"{ours[key]['faces_per_frame']:.2f}, {ours[key]['mean_iou_with_full_scan']:.3f}"

    rows = [
        ("640x480, 1 face: median latency (ms)", cell(ours, "one_face", "median_ms"), cell(theirs, "one_face", "median_ms"), ratio("one_face")),
        ("640x480, 1 face: 95th percentile (ms)", cell(ours, "one_face", "p95_ms"), cell(theirs, "one_face", "p95_ms"), ""),
        ("640x480, 1 face: faces found per frame", cell(ours, "one_face", "faces_per_frame", 2), cell(theirs, "one_face", "faces_per_frame", 2), ""),
        ("640x480, 1 face, video path: mean time per frame (ms)", cell(ours, "one_face_stream", "mean_ms"), cell(theirs, "one_face", "mean_ms"), ratio("one_face_stream")),
        ("640x480, 1 face, video path: median / 95th percentile (ms)", pair(ours, "one_face_stream"), "", ""),
        ("640x480, 1 face, video path: faces per frame, mean IoU with full scans", agreement("one_face_stream"), "", ""),
        ("640x480, 1 face, SSD input 240x180: median latency (ms)", cell(ours, "one_face_small_input", "median_ms"), "", ratio("one_face_small_input")),
        ("640x480, 1 face, SSD input 240x180: faces found per frame", cell(ours, "one_face_small_input", "faces_per_frame", 2), "", ""),
        ("640x480, 3 faces: median latency (ms)", cell(ours, "group", "median_ms"), cell(theirs, "group", "median_ms"), ratio("group")),
        ("640x480, 3 faces: 95th percentile (ms)", cell(ours, "group", "p95_ms"), cell(theirs, "group", "p95_ms"), ""),
        ("640x480, 3 faces: faces found per frame", cell(ours, "group", "faces_per_frame", 2), cell(theirs, "group", "faces_per_frame", 2), ""),
        ("640x480, 3 faces, video path: mean time per frame (ms)", cell(ours, "group_stream", "mean_ms"), cell(theirs, "group", "mean_ms"), ratio("group_stream")),
        ("640x480, 3 faces, video path: median / 95th percentile (ms)", pair(ours, "group_stream"), "", ""),
        ("640x480, 3 faces, video path: faces per frame, mean IoU with full scans", agreement("group_stream"), "", ""),
        ("640x480, 3 faces, SSD input 240x180: median latency (ms)", cell(ours, "group_small_input", "median_ms"), "", ratio("group_small_input")),
        ("640x480, 3 faces, SSD input 240x180: faces found per frame", cell(ours, "group_small_input", "faces_per_frame", 2), "", ""),
        (f"Folder of {results['photo_count']} photos: images/s", cell(ours, "photos", "images_per_s"), cell(theirs, "photos", "images_per_s"), ratio("photos")),
        (f"Folder of {results['photo_count']} photos: faces found", cell(ours, "photos", "faces", 0), cell(theirs, "photos", "faces", 0), ""),
        ("Classifier, batch 1: faces/s", cell(ours, "classifier_1", "faces_per_s", 0), cell(theirs, "classifier_1", "faces_per_s", 0), ratio("classifier_1")),
        ("Classifier, batch 1, through `Model.predict`: faces/s", cell(ours, "classifier_1_predict", "faces_per_s", 0), "", ""),
        ("Classifier, batch 64: faces/s", cell(ours, "classifier_64", "faces_per_s", 0), cell(theirs, "classifier_64", "faces_per_s", 0), ratio("classifier_64")),
        ("Peak resident memory (MiB)", f"{results['emodetect_peak_mib']:,.0f}", f"{results['fer_peak_mib']:,.0f}" if theirs else "-", ""),
    ]
    long_run = results["long_run"]
    lines = [
        "| Measure | emodetect | fer | emodetect speed-up |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {name} | {mine} | {other} | {speedup} |" for name, mine, other, speedup in rows),
        "",
        f"Long video run: `Pipeline.process_video` over {long_run['frames']:,} frames of 640x480 MPEG-4 with one face, "
        f"writing an annotated MPEG-4 file and a CSV table: {long_run['frames_per_s']:.1f} frames/s, resident memory "
        f"{long_run['rss_start_mib']:,.0f} MiB at frame {long_run['rss_start_frame']:,} and {long_run['rss_end_mib']:,.0f} MiB "
        f"at frame {long_run['rss_end_frame']:,} ({long_run['growth_mib_per_1000_frames']:+.2f} MiB per 1,000 frames).",
        "",
        f"Run: {results['date']} on {results['machine']}, load average {results['load_before']} before and "
        f"{results['load_after']} after the run. Versions: emodetect {results['versions']['emodetect']}, "
        f"OpenCV {results['versions']['opencv']}, TensorFlow {results['versions']['tensorflow']}"
        + (f", fer {FER_VERSION}" if theirs else "")
        + f". {results['rounds']} rounds of {results['frame_count']} frames per latency scenario. Figures are "
        "medians over rounds, and each speed-up is the median of the per-round ratios of throughput "
        "(frames, images or faces per second). The plain 640x480 rows scan every frame whole, as for still "
        "images. The video path rows run `Pipeline.stream()` with its defaults over the same frames in order, "
        "as `process_video` does. It scans every 5th frame whole and the others only in a region around the "
        "previous frame's faces. Frame times therefore alternate, and the speed-up of these rows compares mean "
        "times per frame.",
        "",
        f"Command: `{results['command']}`",
    ]
    return "\n".join(lines) + "\n"


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fer-worker", type=Path, metavar="DATA", help=argparse.SUPPRESS)
    parser.add_argument("--fer-venv", type=Path, default=ROOT / "benchmarks" / ".venv-fer", help="fer's environment")
    parser.add_argument("--no-fer", action="store_true", help="measure emodetect alone")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every scenario on each side (default: 3)")
    parser.add_argument("--frames", type=int, default=60, help="frames per latency scenario and round (default: 60)")
    parser.add_argument("--photos", type=int, default=40, help="photos in the folder scenario (default: 40)")
    parser.add_argument("--classifier-calls", type=int, default=200, help="batch-1 classifier calls per round (default: 200)")
    parser.add_argument("--long-frames", type=int, default=3000, help="frames of the memory run (default: 3000)")
    parser.add_argument("--classifier", default="happy-sad", help="emodetect classifier (default: happy-sad)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "speed.md", help="Markdown table to write")
    arguments = parser.parse_args()

    if arguments.fer_worker is not None:
        return run_fer_worker(arguments.fer_worker)

    photos_dir = SHARED / "data" / "paper-happy-sad"
    if not photos_dir.is_dir():
        print(f"speed.py: error: photos not found at {photos_dir}. Set EMODETECT_SHARED to the shared folder.", file=sys.stderr)
        return 2

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="emodetect-speed-") as temporary:
        folder = Path(temporary)
        if "EMODETECT_HOME" not in os.environ:
            os.environ["EMODETECT_HOME"] = str(folder / "home")
            from emodetect.weights import import_weights

            import_weights(SHARED / "weights")

        import tensorflow as tf

        import emodetect
        from emodetect import Pipeline
        from emodetect.detectors import SSDDetector

        pipeline = Pipeline(detector="ssd", classifier=arguments.classifier)
        inputs = prepare_inputs(pipeline, photos_dir, arguments.frames, arguments.photos)
        data_path = folder / "inputs.npz"
        save_inputs(inputs, data_path)
        ours = emodetect_callables(pipeline)
        small_input_pipeline = Pipeline(detector=SSDDetector(input_size=SMALL_SSD_INPUT), classifier=pipeline.classifier)
        for frame in inputs["one_face"][:5]:
            ours["detect"](frame)
            emodetect_callables(small_input_pipeline)["detect"](frame)
        ours["classify_crops"](inputs["crops"][:64])

        worker = None
        if not arguments.no_fer:
            python = ensure_fer_environment(arguments.fer_venv)
            worker = FerWorker(python, data_path, folder / "fer-worker.log")

        rounds = []
        try:
            for round_index in range(arguments.rounds):
                round_results: dict[str, dict[str, Any]] = {"emodetect": {}, "fer": {}}
                for command in scenarios(arguments.frames, arguments.classifier_calls):
                    key = scenario_key(command)
                    round_results["emodetect"][key] = run_command(command, inputs, **ours)
                    if worker is not None:
                        round_results["fer"][key] = worker.measure(command)
                    figures = {side: round_results[side].get(key) for side in round_results}
                    print(f"round {round_index + 1}, {key}: {json.dumps(figures)}", file=sys.stderr)
                variants = measure_variants(pipeline, small_input_pipeline, inputs, arguments.classifier_calls)
                round_results["emodetect"].update(variants)
                print(f"round {round_index + 1}, variants: {json.dumps(variants)}", file=sys.stderr)
                rounds.append(round_results)
        finally:
            if worker is not None:
                worker.close()

        print(f"Long run over {arguments.long_frames} frames", file=sys.stderr)
        long_run = measure_long_run(pipeline, inputs["one_face"], arguments.long_frames, folder)

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_description(),
        "load_before": load_before,
        "load_after": load_average(),
        "versions": {"emodetect": emodetect.__version__, "opencv": cv2.__version__, "tensorflow": tf.__version__},
        "rounds": arguments.rounds,
        "frame_count": arguments.frames,
        "photo_count": len(inputs["photos"]),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "emodetect": summarise(rounds, "emodetect"),
        "emodetect_peak_mib": resident_memory_mib("VmHWM"),
        "long_run": long_run,
        "per_round": rounds,
    }
    if worker is not None:
        results["fer"] = summarise(rounds, "fer")
        results["fer_peak_mib"] = max(round_["fer"][key]["peak_mib"] for round_ in rounds for key in round_["fer"])
        results["ratios"] = ratio_summary(rounds)

    report = format_report(results)
    print(report)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(report, encoding="utf-8")
    arguments.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"Wrote {arguments.out} and {arguments.out.with_suffix('.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
