"""The `emodetect` command line: detect, models, download, and fast start-up."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import pytest

from emodetect.cli import main


def test_detect_writes_annotated_image_and_json(ssd_home, paper_images, tmp_path, capsys):
    output = tmp_path / "out"
    json_file = tmp_path / "faces.json"

    code = main(["detect", str(paper_images / "happy" / "1-2.jpg"), "--output", str(output), "--json", str(json_file)])

    assert code == 0
    annotated = cv2.imread(str(output / "1-2.jpg"))
    assert annotated.shape == (350, 590, 3)
    data = json.loads(json_file.read_text())
    assert data["detector"] == "ssd"
    assert [face["label"] for face in data["results"][0]["faces"]] == ["happy"] * 3
    assert "1-2.jpg: 3 faces" in capsys.readouterr().out


def test_detect_reports_unreadable_and_fails(ssd_home, paper_images, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_text("text, not pixels")

    code = main(["detect", str(broken), str(paper_images / "sad" / "Crying-girl.jpg")])

    captured = capsys.readouterr()
    assert code == 1
    assert "Crying-girl.jpg: 1 face" in captured.out
    assert "1 of 2 images processed" in captured.out
    assert "broken.jpg" in captured.err


def test_detect_json_records_errors(ssd_home, tmp_path):
    missing = tmp_path / "missing.png"
    json_file = tmp_path / "out.json"

    main(["detect", str(missing), "--json", str(json_file)])

    record = json.loads(json_file.read_text())["results"][0]
    assert record["source"] == str(missing)
    assert "not found" in record["error"]


def test_detect_expands_folders(ssd_home, paper_images, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("1-2.jpg", "HAPPY-PEOPLE-CLUB-LOGO.jpg"):
        (folder / name).write_bytes((paper_images / "happy" / name).read_bytes())
    (folder / "notes.txt").write_text("ignored")

    assert main(["detect", str(folder)]) == 0
    assert "2 of 2 images processed, 3 faces found" in capsys.readouterr().out


def test_detect_falls_back_to_haar_offline(paper_images, capsys):
    code = main(["detect", str(paper_images / "sad" / "51079685_M.jpg")])

    captured = capsys.readouterr()
    assert code == 0
    assert "detector haar" in captured.out


def test_detect_explicit_ssd_offline_fails(paper_images, capsys):
    code = main(["detect", str(paper_images / "sad" / "51079685_M.jpg"), "--detector", "ssd"])

    assert code == 1
    assert "emodetect download --from DIR" in capsys.readouterr().err


def test_detect_rejects_threshold_above_one(ssd_home, paper_images, capsys):
    assert main(["detect", str(paper_images / "happy" / "1-2.jpg"), "--threshold", "1.5"]) == 2
    assert "--threshold" in capsys.readouterr().err


def test_download_from_folder_fills_cache(shared_dir, isolated_cache, capsys):
    assert main(["download", "--from", str(shared_dir / "weights")]) == 0
    assert (isolated_cache / "opencv_face_detector_uint8.pb").is_file()
    assert "imported  opencv_face_detector_uint8.pb" in capsys.readouterr().out


def test_download_from_folder_rejects_bad_file(tmp_path, capsys):
    (tmp_path / "opencv_face_detector.pbtxt").write_text("tampered")

    assert main(["download", "--from", str(tmp_path)]) == 1
    assert "rejected  opencv_face_detector.pbtxt" in capsys.readouterr().out


def test_download_offline_names_files(capsys):
    assert main(["download"]) == 1
    assert "opencv_face_detector_uint8.pb" in capsys.readouterr().err


def test_models_lists_backends_and_cache_status(ssd_home, capsys):
    assert main(["models"]) == 0

    out = capsys.readouterr().out
    assert "ssd" in out
    assert "haar" in out
    assert "happy-sad" in out
    assert "opencv_face_detector_uint8.pb    cached" in out


def test_models_reports_face_crop_cache(isolated_cache, capsys):
    crops = isolated_cache / "face-crops"
    crops.mkdir()
    (crops / "a.npz").write_bytes(b"x" * 300_000)
    (crops / "b.npz").write_bytes(b"x" * 200_000)

    assert main(["models"]) == 0

    out = capsys.readouterr().out
    assert f"Face crops (cache {crops}):" in out
    assert "2 images, 0.5 MB" in out


def test_help_does_not_import_tensorflow_or_opencv():
    code = "import sys; from emodetect.cli import build_parser; build_parser(); import emodetect; " \
           "print(sorted(m for m in ('tensorflow', 'cv2', 'keras') if m in sys.modules))"

    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert output.strip() == "[]"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "detect" in capsys.readouterr().out


@pytest.mark.parametrize("argument", ["--version"])
def test_version_flag(argument, capsys):
    assert main([argument]) == 0
    assert capsys.readouterr().out.startswith("emodetect ")


def test_detect_with_missing_model_file_fails_cleanly(paper_images, tmp_path, capsys):
    code = main(["detect", str(paper_images / "happy" / "1-2.jpg"), "--classifier", str(tmp_path / "absent.keras")])

    assert code == 1
    assert "Model file not found" in capsys.readouterr().err


def test_detect_json_folder_fails_early(ssd_home, paper_images, tmp_path, capsys):
    code = main(["detect", str(paper_images / "happy" / "1-2.jpg"), "--json", str(tmp_path)])

    captured = capsys.readouterr()
    assert code == 2
    assert f"received the folder '{tmp_path}'" in captured.err
    assert "1-2.jpg" not in captured.out


def test_detect_output_into_input_folder_keeps_originals(ssd_home, paper_images, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    original = (paper_images / "happy" / "1-2.jpg").read_bytes()
    (folder / "1-2.jpg").write_bytes(original)

    assert main(["detect", str(folder), "--output", str(folder)]) == 0

    assert (folder / "1-2.jpg").read_bytes() == original
    assert (folder / "1-2_1.jpg").is_file()


def test_detect_skips_nested_output_folder(ssd_home, paper_images, tmp_path, capsys):
    folder = tmp_path / "photos"
    (folder / "annotated").mkdir(parents=True)
    (folder / "1-2.jpg").write_bytes((paper_images / "happy" / "1-2.jpg").read_bytes())
    main(["detect", str(folder), "--output", str(folder / "annotated")])
    capsys.readouterr()

    assert main(["detect", str(folder), "--output", str(folder / "annotated")]) == 0
    assert "1 of 1 images processed" in capsys.readouterr().out


def test_detect_json_to_stdout_is_parseable(ssd_home, paper_images, capsys):
    assert main(["detect", str(paper_images / "happy" / "1-2.jpg"), "--json", "-"]) == 0

    data = json.loads(capsys.readouterr().out)
    assert len(data["results"][0]["faces"]) == 3


def test_detect_unknown_detector_is_usage_error(paper_images, capsys):
    assert main(["detect", str(paper_images / "happy" / "1-2.jpg"), "--detector", "nope"]) == 2
    assert "'haar'" in capsys.readouterr().err


def test_detect_json_over_input_rejected(ssd_home, paper_images, tmp_path, capsys):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes((paper_images / "happy" / "1-2.jpg").read_bytes())
    original = photo.read_bytes()

    code = main(["detect", str(photo), "--json", str(photo)])

    assert code == 2
    assert "would be overwritten" in capsys.readouterr().err
    assert photo.read_bytes() == original


def test_detect_interrupted_keeps_finished_records(ssd_home, paper_images, tmp_path, monkeypatch, capsys):
    from emodetect.pipeline import Pipeline

    real_run = Pipeline.run

    def run_then_interrupt(self, images, **options):
        for position, outcome in enumerate(real_run(self, images, **options)):
            if position == 2:
                raise KeyboardInterrupt
            yield outcome

    monkeypatch.setattr(Pipeline, "run", run_then_interrupt)
    photos = [str(paper_images / "happy" / name) for name in ("1-2.jpg", "happy-person.jpeg", "Travis-Bradberry-Happy.jpg")]
    json_file = tmp_path / "faces.json"

    code = main(["detect", *photos, "--json", str(json_file)])

    assert code == 130
    assert [record["source"] for record in json.loads(json_file.read_text())["results"]] == photos[:2]
    assert "stopped by Ctrl-C after 2 images" in capsys.readouterr().out


def test_detect_reports_broken_link_in_folder(ssd_home, paper_images, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "1-2.jpg").write_bytes((paper_images / "happy" / "1-2.jpg").read_bytes())
    (folder / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")

    code = main(["detect", str(folder)])

    captured = capsys.readouterr()
    assert code == 1
    assert "1 of 2 images processed" in captured.out
    assert "gone.jpg" in captured.err


def test_detect_reports_link_loop_in_folder(ssd_home, paper_images, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "1-2.jpg").write_bytes((paper_images / "happy" / "1-2.jpg").read_bytes())
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")

    code = main(["detect", str(folder), "--output", str(tmp_path / "out"), "--json", str(tmp_path / "faces.json")])

    assert code == 1
    assert "loop.jpg" in capsys.readouterr().err
    assert (tmp_path / "out" / "1-2.jpg").is_file()


def test_detect_json_on_output_folder_rejected(ssd_home, paper_images, tmp_path, capsys):
    output = tmp_path / "out"

    code = main(["detect", str(paper_images / "happy" / "1-2.jpg"), "--output", str(output), "--json", str(output)])

    assert code == 2
    assert "must name a file" in capsys.readouterr().err


def test_detect_json_under_a_file_rejected(ssd_home, paper_images, tmp_path, capsys):
    blocking = tmp_path / "notes.txt"
    blocking.write_text("a file")

    code = main(["detect", str(paper_images / "happy" / "1-2.jpg"), "--json", str(blocking / "faces.json")])

    assert code == 2
    assert "is a file, not a folder" in capsys.readouterr().err
