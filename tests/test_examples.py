"""Every script in examples/ runs as a user would run it, with small settings where it trains.

Each script runs in a subprocess, in a temporary working folder, with the weights cache seeded and
downloads forbidden. `EXAMPLE_ARGUMENTS` gives each script its command-line arguments; a new example needs
an entry there, and `test_every_example_has_arguments` fails until it has one.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
TIMEOUT_SECONDS = 300


def _arguments_annotate_photo(paper_images: Path, folder: Path) -> list[str]:
    return [str(paper_images / "happy" / "1-2.jpg"), "--output", str(folder / "annotated.jpg")]


def _arguments_folder_to_csv(paper_images: Path, folder: Path) -> list[str]:
    photos = folder / "photos"
    (photos / "sad").mkdir(parents=True)
    shutil.copyfile(paper_images / "happy" / "1-2.jpg", photos / "three-women.jpg")
    shutil.copyfile(paper_images / "sad" / "51079685_M.jpg", photos / "sad" / "girl.jpg")
    return [str(photos), "--output", str(folder / "faces.csv")]


def _arguments_custom_backend(paper_images: Path, folder: Path) -> list[str]:
    return [str(paper_images / "sad" / "maxresdefault3.jpg"), "--output", str(folder / "profile.jpg")]


def _arguments_finetune(paper_images: Path, folder: Path) -> list[str]:
    # Three photos per class with one clear face each (1-2.jpg has three), so each of three folds gets a
    # face of each class.
    photos = {
        "happy": ["1-2.jpg", "happy-person.jpeg", "Travis-Bradberry-Happy.jpg"],
        "sad": ["Crying-girl.jpg", "51079685_M.jpg", "73705bd7debb66c2afc780a22c223804.jpg"],
    }
    for label, names in photos.items():
        (folder / "photos" / label).mkdir(parents=True)
        for name in names:
            shutil.copyfile(paper_images / label / name, folder / "photos" / label / name)
    return ["photos", "--faces", "--folds", "3", "--epochs", "1", "--out", "tuned.keras", "--figures", "figures"]


def _arguments_annotate_video(paper_images: Path, folder: Path) -> list[str]:
    import cv2

    # A 20-frame clip of a photo with three faces keeps the run short.
    frame = cv2.resize(cv2.imread(str(paper_images / "happy" / "1-2.jpg")), (640, 380))
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 380))
    for _ in range(20):
        writer.write(frame)
    writer.release()
    return ["clip.avi", "--output", "annotated.avi", "--csv", "faces.csv", "--every", "2"]


EXAMPLE_ARGUMENTS = {
    "annotate_photo.py": _arguments_annotate_photo,
    "folder_to_csv.py": _arguments_folder_to_csv,
    "custom_backend.py": _arguments_custom_backend,
    "finetune_on_your_folders.py": _arguments_finetune,
    "annotate_video.py": _arguments_annotate_video,
}
"""Example file name to a function that prepares the working folder and returns the script's arguments."""


def run_example(name: str, arguments: list[str], folder: Path, home: Path | None = None) -> subprocess.CompletedProcess:
    """Run an example script in `folder`, with `home` as the weights cache if given, and return the process."""
    environment = dict(os.environ, MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2", EMODETECT_OFFLINE="1")
    if home is not None:
        environment["EMODETECT_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *arguments],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )


@pytest.fixture(scope="module")
def example_run(paper_images, seeded_home, tmp_path_factory):
    """Return a function that runs an example once per module and returns its working folder and process."""
    runs: dict[str, tuple[Path, subprocess.CompletedProcess]] = {}

    def run(name: str) -> tuple[Path, subprocess.CompletedProcess]:
        if name not in runs:
            folder = tmp_path_factory.mktemp(name.removesuffix(".py"))
            arguments = EXAMPLE_ARGUMENTS[name](paper_images, folder)
            runs[name] = (folder, run_example(name, arguments, folder, home=seeded_home))
        return runs[name]

    return run


def test_every_example_has_arguments():
    missing = [path.name for path in EXAMPLES if path.name not in EXAMPLE_ARGUMENTS]

    assert missing == [], f"add these examples to EXAMPLE_ARGUMENTS in {Path(__file__).name}"


@pytest.mark.parametrize("name", [path.name for path in EXAMPLES if path.name in EXAMPLE_ARGUMENTS])
def test_example_runs(name, example_run):
    _, completed = example_run(name)

    assert completed.returncode == 0, f"{name} failed:\n{completed.stdout}\n{completed.stderr}"


def test_annotate_photo_writes_image(example_run):
    folder, completed = example_run("annotate_photo.py")

    assert (folder / "annotated.jpg").stat().st_size > 0
    assert "3 face(s) found by the ssd detector" in completed.stdout


def test_annotate_photo_missing_photo_fails_clearly(tmp_path):
    completed = run_example("annotate_photo.py", [str(tmp_path / "absent.jpg")], tmp_path)

    assert completed.returncode != 0
    assert "Photo not found" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_folder_to_csv_writes_row_per_face(example_run):
    folder, _ = example_run("folder_to_csv.py")

    with open(folder / "faces.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))

    assert [row["file"] for row in rows] == ["sad/girl.jpg"] + ["three-women.jpg"] * 3
    assert set(rows[0]) >= {"x1", "y1", "x2", "y2", "label", "p_happy", "p_sad"}


def test_folder_to_csv_reports_unreadable_file(paper_images, seeded_home, tmp_path):
    arguments = _arguments_folder_to_csv(paper_images, tmp_path)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not an image")

    completed = run_example("folder_to_csv.py", arguments, tmp_path, home=seeded_home)

    assert completed.returncode == 1
    assert "broken.jpg" in completed.stderr
    assert "2 of 3 images read" in completed.stdout


def test_custom_backend_finds_profile_face(example_run):
    _, completed = example_run("custom_backend.py")

    assert "1 face(s) in profile" in completed.stdout


def test_finetune_writes_model_and_figures(example_run):
    folder, completed = example_run("finetune_on_your_folders.py")

    assert (folder / "tuned.keras").stat().st_size > 0
    for name in ("before-confusion.png", "after-confusion.png", "before-after.png", "finetune-curves.png"):
        assert (folder / "figures" / name).stat().st_size > 0, name
    assert "All 6 faces, before fine-tuning (happy-sad)" in completed.stdout
    assert "McNemar's exact test p = " in completed.stdout


def test_annotate_video_writes_video_and_table(example_run):
    folder, completed = example_run("annotate_video.py")

    assert (folder / "annotated.avi").stat().st_size > 0
    assert (folder / "faces.csv").stat().st_size > 0
    assert "20 frames read, 10 processed" in completed.stdout
