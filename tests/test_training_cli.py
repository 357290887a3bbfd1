"""The `emodetect train` and `emodetect evaluate` commands on small real folders."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emodetect.cli import main
from emodetect.model_io import read_metadata

TINY_NET = ["--arch", "mini-vgg", "--option", "width=4", "--option", "input_size=24,24"]


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory, shared_dir: Path) -> Path:
    """12 happy and 12 sad FER2013 validation faces in class sub-folders."""
    root = tmp_path_factory.mktemp("faces")
    for name in ("happy", "sad"):
        (root / name).mkdir()
        for source in sorted((shared_dir / "data" / "fer2013" / "val" / name).iterdir())[:12]:
            shutil.copyfile(source, root / name / source.name)
    return root


@pytest.fixture(scope="module")
def trained_model(face_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "tiny.keras"
    assert main(["-q", "train", str(face_folder), *TINY_NET, "--epochs", "1", "--out", str(out)]) == 0
    return out


def test_cli_import_stays_light():
    code = "import sys, emodetect.cli; sys.exit(any(name in sys.modules for name in ('tensorflow', 'cv2', 'keras')))"

    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert completed.returncode == 0, completed.stderr


def test_train_writes_model_and_report(face_folder, tmp_path, capsys):
    out = tmp_path / "model.keras"
    report = tmp_path / "report.json"

    code = main(["-q", "train", str(face_folder), *TINY_NET, "--epochs", "2", "--out", str(out), "--json", str(report)])

    assert code == 0
    written = json.loads(report.read_text())
    assert written["class_names"] == ["happy", "sad"]
    assert len(written["history"]["loss"]) == 2
    assert written["counts"]["test"] == {"happy": 1, "sad": 1}
    assert read_metadata(out).extra["training"]["split_seed"] == 0
    assert "Saved" in capsys.readouterr().out


def test_train_split_by_file_recorded(face_folder, tmp_path):
    out = tmp_path / "model.keras"

    code = main(["-q", "train", str(face_folder), *TINY_NET, "--epochs", "1", "--split-by-file", "--out", str(out)])

    assert code == 0
    assert read_metadata(out).extra["training"]["group_duplicates"] is False


def test_train_groups_duplicates_by_default(trained_model):
    assert read_metadata(trained_model).extra["training"]["group_duplicates"] is True


def test_train_needs_arch_or_from(face_folder, tmp_path):
    with pytest.raises(SystemExit) as stopped:
        main(["train", str(face_folder), "--out", str(tmp_path / "model.keras")])

    assert stopped.value.code == 2


def test_train_rejects_unknown_option(face_folder, tmp_path, capsys):
    code = main(["train", str(face_folder), "--arch", "paper-baseline", "--option", "widht=3", "--out", str(tmp_path / "m.keras")])

    assert code == 2
    assert "has no option 'widht'" in capsys.readouterr().err


def test_train_single_class_fails(face_folder, tmp_path, capsys):
    root = tmp_path / "one-class"
    shutil.copytree(face_folder / "happy", root / "happy")

    code = main(["train", str(root), *TINY_NET, "--out", str(tmp_path / "m.keras")])

    assert code == 1
    assert "at least 2 class sub-folders" in capsys.readouterr().err


def test_evaluate_json_to_stdout_with_plots(trained_model, face_folder, tmp_path, capsys):
    code = main(["-q", "evaluate", str(trained_model), str(face_folder), "--json", "-", "--plots", str(tmp_path / "plots")])

    captured = capsys.readouterr()
    assert code == 0
    assert json.loads(captured.out)["class_names"] == ["happy", "sad"]
    assert "confusion.png" in captured.err


def test_evaluate_leaves_out_unknown_folders(trained_model, face_folder, shared_dir, tmp_path, caplog):
    root = tmp_path / "data"
    shutil.copytree(face_folder, root)
    shutil.copytree(shared_dir / "data" / "fer2013" / "val" / "angry", root / "angry", dirs_exist_ok=True)
    report = tmp_path / "report.json"

    with caplog.at_level(logging.WARNING):
        code = main(["evaluate", str(trained_model), str(root), "--json", str(report), "--plots", str(tmp_path / "plots")])

    assert code == 0
    assert "['angry']" in caplog.text
    written = json.loads(report.read_text())
    assert written["class_names"] == ["happy", "sad"]
    assert written["count"] == 24
    assert sum(map(sum, written["confusion_matrix"])) == 24
    assert set(written["per_class"]["happy"]) == {"precision", "recall", "f1", "support"}
    assert (tmp_path / "plots" / "confusion.png").is_file()


def test_evaluate_test_subset_matches_training_split(trained_model, face_folder, tmp_path):
    report = tmp_path / "report.json"

    code = main(["-q", "evaluate", str(trained_model), str(face_folder), "--subset", "test", "--json", str(report)])

    written = json.loads(report.read_text())
    assert code == 0
    assert written["count"] == 2
    assert written["data"]["subset"] == "test"


def test_evaluate_unknown_model_fails(face_folder, capsys):
    code = main(["evaluate", "no-such-model", str(face_folder)])

    assert code == 1
    assert "neither a .keras file nor a shipped model" in capsys.readouterr().err


def test_fine_tune_from_saved_model(trained_model, face_folder, tmp_path):
    out = tmp_path / "tuned.keras"

    code = main(["-q", "train", str(face_folder), "--from", str(trained_model), "--freeze-features", "--epochs", "1", "--out", str(out)])

    assert code == 0
    metadata = read_metadata(out)
    assert metadata.class_names == ["happy", "sad"]
    assert metadata.extra["base_model"]["file"] == str(trained_model)
    assert metadata.extra["training"]["freeze_features"] is True
    assert metadata.extra["training"]["learning_rate"] == 1e-4


def test_train_on_faces_of_photos(ssd_home, paper_images, tmp_path, capsys):
    root = tmp_path / "photos"
    for relative in ("happy/1-2.jpg", "happy/happy-person.jpeg", "sad/Crying-girl.jpg", "sad/51079685_M.jpg"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paper_images / relative, root / relative)
    out = tmp_path / "faces.keras"

    code = main(["-q", "train", str(root), *TINY_NET, "--all-faces", "--split", "1", "0", "0", "--epochs", "1", "--out", str(out)])

    assert code == 0
    assert read_metadata(out).extra["training"]["counts"]["train"] == {"happy": 4, "sad": 2}
    assert read_metadata(out).extra["training"]["faces"]["faces"] == "all"
