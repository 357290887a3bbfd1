"""Video processing on short clips made from real photos: ids, smoothing, tables, damaged files and the CLI.

Each clip is written with OpenCV in the test: a face panned and zoomed over the frames, a group photo
panned, or a happy and a sad face alternating in one place.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from emodetect import Pipeline
from emodetect.cli import main
from emodetect.detectors import SSDDetector
from emodetect.images import crop_face, read_image
from emodetect.tracking import box_iou
from emodetect.video import VideoReadError, VideoWriteError, csv_header

FRAME_SIZE = (320, 240)  # (width, height)
FPS = 10.0

# SSD face boxes of the photos used below, (x1, y1, x2, y2) in the original photo.
HAPPY_FACE = ("happy/happy-person.jpeg", (430, 151, 647, 451))
SAD_FACE = ("sad/Crying-girl.jpg", (583, 446, 1527, 1514))


def write_video(path: Path, frames: list[np.ndarray], fourcc: str) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), FPS, FRAME_SIZE)
    assert writer.isOpened(), f"this OpenCV build cannot write {fourcc} to {path}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def pan_and_zoom(image: np.ndarray, count: int, start: float = 1.2, zoom: float = 0.3) -> list[np.ndarray]:
    """Cut `count` frames from a photo with a window that slides right and shrinks (zooms in) step by step.

    The first window is the photo shrunk `start` times, and the last one is `1 + zoom` times smaller still.
    """
    height, width = image.shape[:2]
    frames = []
    for step in range(count):
        scale = start * (1.0 + zoom * step / count)
        window_width, window_height = int(width / scale), int(height / scale)
        left = int((width - window_width) * step / max(1, count - 1))
        top = (height - window_height) // 2
        window = image[top : top + window_height, left : left + window_width]
        frames.append(cv2.resize(window, FRAME_SIZE, interpolation=cv2.INTER_AREA))
    return frames


def face_frame(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Put a 150x150 crop around a face at a fixed place of a grey frame."""
    frame = np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 128, np.uint8)
    face = cv2.resize(crop_face(image, box, margin=0.3), (150, 150), interpolation=cv2.INTER_AREA)
    frame[45:195, 85:235] = face
    return frame


def label_changes(labels: list[str]) -> int:
    return sum(1 for before, after in zip(labels, labels[1:]) if before != after)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def count_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.fixture(scope="module")
def pipeline(shared_dir):
    weights = shared_dir / "weights"
    detector = SSDDetector(
        model_path=str(weights / "opencv_face_detector_uint8.pb"),
        config_path=str(weights / "opencv_face_detector.pbtxt"),
    )
    return Pipeline(detector=detector, classifier="happy-sad")


@pytest.fixture(scope="module")
def clips(tmp_path_factory, paper_images):
    folder = tmp_path_factory.mktemp("clips")
    one_face = pan_and_zoom(read_image(paper_images / HAPPY_FACE[0]), 20)
    # The whole photo zoomed in by at most 10%, so that the three faces stay in every frame.
    group = pan_and_zoom(read_image(paper_images / "happy" / "1-2.jpg"), 20, start=1.0, zoom=0.1)

    happy = face_frame(read_image(paper_images / HAPPY_FACE[0]), HAPPY_FACE[1])
    sad = face_frame(read_image(paper_images / SAD_FACE[0]), SAD_FACE[1])
    # 16 mostly happy frames with every 4th frame sad, then 16 mostly sad frames with every 4th frame happy.
    flicker = []
    for index in range(32):
        usual, odd = (happy, sad) if index < 16 else (sad, happy)
        flicker.append(odd if index % 4 == 3 else usual)

    return {
        "one_face": write_video(folder / "one-face.avi", one_face, "MJPG"),
        "one_face_mp4": write_video(folder / "one-face.mp4", pan_and_zoom(read_image(paper_images / HAPPY_FACE[0]), 40), "mp4v"),
        "group": write_video(folder / "group.avi", group, "MJPG"),
        "flicker": write_video(folder / "flicker.avi", flicker, "MJPG"),
    }


def test_face_id_persists_across_frames(pipeline, clips):
    frames = list(pipeline.process_video(clips["one_face"]))

    assert [frame.index for frame in frames] == list(range(20))
    assert [len(frame.result) for frame in frames] == [1] * 20
    assert {int(frame.result.track_ids[0]) for frame in frames} == {1}


def test_group_faces_keep_distinct_ids(pipeline, clips):
    frames = list(pipeline.process_video(clips["group"]))

    first_ids = sorted(frames[0].result.track_ids.tolist())
    assert len(first_ids) == 3
    assert len(set(first_ids)) == 3
    for frame in frames:
        assert sorted(frame.result.track_ids.tolist()) == first_ids
        # The faces sit side by side, so the ids must stay in the same left-to-right order.
        order = np.argsort(frame.result.boxes[:, 0])
        assert frame.result.track_ids[order].tolist() == frames[0].result.track_ids[np.argsort(frames[0].result.boxes[:, 0])].tolist()


@pytest.fixture(scope="module")
def flicker_runs(pipeline, clips):
    """The flicker clip's frames without smoothing (time constant 0) and with the default smoothing."""
    return list(pipeline.process_video(clips["flicker"], time_constant=0)), list(pipeline.process_video(clips["flicker"]))


def test_smoothing_reduces_label_changes(flicker_runs):
    raw = [frame.result.labels[0] for frame in flicker_runs[0]]
    smoothed = [frame.result.labels[0] for frame in flicker_runs[1]]

    # The classifier follows each frame's face, so the raw labels flicker with the 1-in-4 frames.
    assert label_changes(raw) >= 10
    # The 0.5 s moving average keeps only the real change from happy to sad.
    assert label_changes(smoothed) == 1
    assert smoothed[0] == "happy"
    assert smoothed[-1] == "sad"


def test_alternating_faces_keep_one_track(flicker_runs):
    for frames in flicker_runs:
        assert [len(frame.result) for frame in frames] == [1] * 32
        assert {int(frame.result.track_ids[0]) for frame in frames} == {1}


def test_tracking_off_leaves_raw_results(pipeline, clips):
    frames = list(pipeline.process_video(clips["one_face"], tracking=False))
    still = pipeline(cv2.VideoCapture(str(clips["one_face"])).read()[1])

    assert all((frame.result.track_ids == -1).all() for frame in frames)
    np.testing.assert_allclose(frames[0].result.probabilities, still.probabilities, atol=1e-5)


def test_small_ssd_input_finds_clip_faces(pipeline, clips, shared_dir):
    weights = shared_dir / "weights"
    small = SSDDetector(
        model_path=str(weights / "opencv_face_detector_uint8.pb"),
        config_path=str(weights / "opencv_face_detector.pbtxt"),
        input_size=(240, 180),
    )
    capture = cv2.VideoCapture(str(clips["one_face"]))

    for _ in range(20):
        frame = capture.read()[1]
        found, reference = small.detect(frame), pipeline.detector.detect(frame)
        assert len(found) == 1
        # Boxes come back in the frame's pixels whatever the network's input size.
        assert box_iou(found.boxes, reference.boxes)[0, 0] > 0.5
    capture.release()


def test_ssd_input_size_must_be_positive(shared_dir):
    weights = shared_dir / "weights"

    with pytest.raises(ValueError, match="input_size"):
        SSDDetector(
            model_path=str(weights / "opencv_face_detector_uint8.pb"),
            config_path=str(weights / "opencv_face_detector.pbtxt"),
            input_size=(0, 120),
        )


def test_still_images_are_not_tracked(pipeline, paper_images):
    result = pipeline(paper_images / "happy" / "1-2.jpg")

    assert result.track_ids.tolist() == [-1, -1, -1]
    assert all("track_id" not in face for face in result.to_dict()["faces"])


def test_csv_has_one_row_per_face_per_frame(pipeline, clips, tmp_path):
    table = tmp_path / "faces.csv"

    frames = list(pipeline.process_video(clips["group"], csv_path=table))

    rows = read_csv(table)
    assert list(rows[0].keys()) == csv_header(("happy", "sad"))
    assert len(rows) == sum(len(frame.result) for frame in frames) == 60
    for frame in frames:
        frame_rows = [row for row in rows if int(row["frame"]) == frame.index]
        assert sorted(int(row["face_id"]) for row in frame_rows) == sorted(frame.result.track_ids.tolist())
        assert {float(row["timestamp"]) for row in frame_rows} == {round(frame.index / FPS, 3)}
    first = rows[0]
    assert float(first["p_happy"]) + float(first["p_sad"]) == pytest.approx(1.0, abs=2e-4)
    assert first["label"] in ("happy", "sad")
    assert float(first["x2"]) > float(first["x1"])


def test_jsonl_has_one_object_per_frame(pipeline, clips, tmp_path):
    lines_path = tmp_path / "faces.jsonl"

    list(pipeline.process_video(clips["one_face"], jsonl_path=lines_path))

    records = [json.loads(line) for line in lines_path.read_text(encoding="utf-8").splitlines()]
    assert [record["frame"] for record in records] == list(range(20))
    assert records[3]["timestamp"] == pytest.approx(0.3)
    face = records[0]["faces"][0]
    assert face["track_id"] == 1
    assert set(face["probabilities"]) == {"happy", "sad"}
    assert len(face["box"]) == 4


def test_every_n_processes_every_nth_frame(pipeline, clips, tmp_path):
    table = tmp_path / "faces.csv"

    processor = pipeline.process_video(clips["one_face"], csv_path=table, every=3)
    frames = list(processor)

    assert [frame.index for frame in frames] == [0, 3, 6, 9, 12, 15, 18]
    assert sorted({int(row["frame"]) for row in read_csv(table)}) == [0, 3, 6, 9, 12, 15, 18]
    assert processor.stats.frames_read == 20
    assert processor.stats.frames_processed == 7


def test_output_video_has_every_frame(pipeline, clips, tmp_path):
    output = tmp_path / "annotated.mp4"

    processor = pipeline.process_video(clips["one_face"], output=output, every=2)
    processor.run()

    capture = cv2.VideoCapture(str(output))
    ok, first = capture.read()
    capture.release()
    assert ok
    assert first.shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3)
    assert count_frames(output) == 20
    # The annotation changes the pixels: a box and a caption are drawn on the face.
    original = cv2.VideoCapture(str(clips["one_face"])).read()[1]
    assert np.abs(first.astype(int) - original.astype(int)).max() > 100


def test_keep_frames_returns_undrawn_frames(pipeline, clips, tmp_path):
    frames = list(pipeline.process_video(clips["one_face"], output=tmp_path / "annotated.avi", keep_frames=True))
    original = cv2.VideoCapture(str(clips["one_face"])).read()[1]

    np.testing.assert_array_equal(frames[0].image, original)


def test_truncated_video_keeps_frames_before_damage(pipeline, clips, tmp_path):
    intact_table, cut_table = tmp_path / "intact.csv", tmp_path / "cut.csv"
    pipeline.process_video(clips["one_face"], csv_path=intact_table).run()
    data = clips["one_face"].read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])

    processor = pipeline.process_video(cut, csv_path=cut_table, output=tmp_path / "cut-annotated.avi")
    processor.run()

    rows = read_csv(cut_table)
    frames = [int(row["frame"]) for row in rows]
    read = processor.stats.frames_read
    assert 5 <= read < 20
    assert frames == list(range(read))
    assert processor.stats.frames_missing == 20 - read
    # The frames before the cut give the same boxes as in the intact file; the last one may be half decoded.
    intact = read_csv(intact_table)
    for before, after in zip(intact[: read - 1], rows[: read - 1]):
        assert (before["x1"], before["y1"], before["x2"], before["y2"]) == (after["x1"], after["y1"], after["x2"], after["y2"])
    assert count_frames(tmp_path / "cut-annotated.avi") == read


def test_damaged_frame_is_skipped_and_counted(pipeline, clips, tmp_path):
    data = bytearray(clips["one_face_mp4"].read_bytes())
    middle = len(data) // 2
    data[middle : middle + 20000] = bytes((index * 7919) % 251 for index in range(20000))
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))

    processor = pipeline.process_video(damaged)
    indices = [frame.index for frame in processor]

    stats = processor.stats
    assert stats.frames_damaged >= 1
    assert stats.frames_read + stats.frames_damaged + stats.frames_missing == 40
    # Frames after the damage are processed and keep their indices in the original clip.
    assert indices[-1] == 39
    assert len(indices) == stats.frames_read
    assert len(set(range(40)) - set(indices)) == stats.frames_damaged


def test_interrupted_run_leaves_valid_outputs(pipeline, clips, tmp_path):
    table, output = tmp_path / "faces.csv", tmp_path / "annotated.avi"

    processor = pipeline.process_video(clips["one_face"], csv_path=table, output=output)
    for frame in processor:
        if frame.index == 4:
            break
    processor.close()

    assert [int(row["frame"]) for row in read_csv(table)] == [0, 1, 2, 3, 4]
    assert count_frames(output) == 5


def test_stats_count_full_scans(shared_dir, clips):
    weights = shared_dir / "weights"
    # At the full scan's resolution no region scan of this clip needs a rescan, so every full scan is a
    # scheduled one: frames 0, 5, 10 and 15.
    detector = SSDDetector(
        model_path=str(weights / "opencv_face_detector_uint8.pb"),
        config_path=str(weights / "opencv_face_detector.pbtxt"),
        region_face_side=None,
    )
    pipeline = Pipeline(detector=detector, classifier="happy-sad")

    stats = pipeline.process_video(clips["one_face"], scan_every=5).run()

    assert stats.frames_processed == 20
    assert stats.full_scans == 4


def test_max_frames_stops_early(pipeline, clips):
    processor = pipeline.process_video(clips["one_face"], max_frames=6)

    assert len(list(processor)) == 6
    assert processor.stats.frames_read == 6


def test_missing_video_file_is_clear_error(pipeline, tmp_path):
    with pytest.raises(VideoReadError, match="Video file not found: '.*missing.mp4'"):
        pipeline.process_video(tmp_path / "missing.mp4")


def test_non_video_file_is_clear_error(pipeline, paper_images, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n", encoding="utf-8")

    with pytest.raises(VideoReadError, match=r"Cannot open '.*notes.mp4' as a video \(12 bytes"):
        pipeline.process_video(text)


def test_cut_mp4_error_names_lost_index(pipeline, clips, tmp_path):
    data = clips["one_face_mp4"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])

    with pytest.raises(VideoReadError, match="moov atom"):
        pipeline.process_video(cut)


def test_unsupported_output_suffix_rejected(pipeline, clips, tmp_path):
    with pytest.raises(VideoWriteError, match=r"\.avi, \.m4v, \.mkv, \.mov, \.mp4"):
        pipeline.process_video(clips["one_face"], output=tmp_path / "annotated.gif")


def test_every_below_one_rejected(pipeline, clips):
    with pytest.raises(ValueError, match="every >= 1"):
        pipeline.process_video(clips["one_face"], every=0)


def test_processor_iterates_once(pipeline, clips):
    processor = pipeline.process_video(clips["one_face"], max_frames=2)
    list(processor)

    with pytest.raises(RuntimeError, match="iterated only once"):
        iter(processor)


def test_cli_video_writes_tables(ssd_home, clips, tmp_path, capsys):
    table, lines_path = tmp_path / "faces.csv", tmp_path / "faces.jsonl"

    code = main(["video", str(clips["group"]), "--csv", str(table), "--jsonl", str(lines_path), "--every", "2"])

    assert code == 0
    assert len(read_csv(table)) == 30
    assert len(lines_path.read_text(encoding="utf-8").splitlines()) == 10
    output = capsys.readouterr().out
    assert "read 20 frames, processed 10, found 30 faces in 3 tracks" in output


def test_cli_video_cut_file_exit_code(ssd_home, clips, tmp_path, capsys):
    data = clips["one_face"].read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    table = tmp_path / "faces.csv"

    code = main(["video", str(cut), "--csv", str(table)])

    assert code == 1
    assert "unreadable frames" in capsys.readouterr().err
    assert len(read_csv(table)) >= 5


def test_cli_video_missing_source_exit_code(clips, tmp_path, capsys):
    code = main(["video", str(tmp_path / "missing.avi")])

    assert code == 1
    assert "Video file not found" in capsys.readouterr().err


def test_output_over_source_rejected(pipeline, clips, tmp_path):
    source = tmp_path / "clip.avi"
    source.write_bytes(clips["one_face"].read_bytes())
    size = source.stat().st_size

    with pytest.raises(VideoWriteError, match="input video"):
        pipeline.process_video(source, csv_path=source)

    assert source.stat().st_size == size


def test_two_outputs_on_one_file_rejected(pipeline, clips, tmp_path):
    with pytest.raises(VideoWriteError, match="also the CSV path"):
        pipeline.process_video(clips["one_face"], csv_path=tmp_path / "faces.txt", jsonl_path=tmp_path / "faces.txt")


def test_output_folder_rejected_before_reading(pipeline, clips, tmp_path):
    with pytest.raises(VideoWriteError, match="is a folder"):
        pipeline.process_video(clips["one_face"], csv_path=tmp_path)


def test_source_none_rejected(pipeline):
    with pytest.raises(VideoReadError, match="received None"):
        pipeline.process_video(None)


def test_fractional_every_rejected(pipeline, clips):
    with pytest.raises(ValueError, match="integer every"):
        pipeline.process_video(clips["one_face"], every=2.5)


def test_cli_video_rejects_nan_smoothing(clips, capsys):
    code = main(["video", str(clips["one_face"]), "--smoothing", "nan"])

    assert code == 2
    assert "--smoothing must be a finite number" in capsys.readouterr().err


def test_fractional_max_frames_rejected(pipeline, clips):
    with pytest.raises(ValueError, match="integer max_frames"):
        pipeline.process_video(clips["one_face"], max_frames=2.5)
