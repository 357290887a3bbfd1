"""Annotate a video: a box, label and face id per face, plus a CSV row per face per frame.

    python examples/annotate_video.py [VIDEO] [--output annotated.mp4] [--csv faces.csv] [--every N]

VIDEO is a video file or a camera index such as 0 (stop a camera with Ctrl-C). Without it, the script
first writes a 3-second clip, `demo-input.avi`, that pans over a group photo from the shared data folder
beside the repository. At the end it prints each face id with the frames it was seen in and its label
changes, raw and smoothed, which shows what the smoothing removes.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import cv2

from emodetect import Pipeline
from emodetect.images import read_image

DEFAULT_PHOTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "paper-happy-sad" / "happy" / "1-2.jpg"


def write_demo_clip(photo: Path, path: Path, frames: int = 75, fps: float = 25.0) -> Path:
    """Write a clip that pans across a photo and zooms in slightly, as a hand-held camera would."""
    image = read_image(photo)
    height, width = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    if not writer.isOpened():
        sys.exit(f"OpenCV cannot write the demo clip '{path}' with the MJPG codec.")
    for step in range(frames):
        scale = 1.0 + 0.1 * step / frames
        window_width, window_height = int(width / scale), int(height / scale)
        left = (width - window_width) * step // frames
        top = (height - window_height) // 2
        writer.write(cv2.resize(image[top : top + window_height, left : left + window_width], (640, 480)))
    writer.release()
    return path


def count_changes(labels: list[str]) -> int:
    return sum(1 for before, after in zip(labels, labels[1:]) if before != after)


def main() -> int:
    parser = argparse.ArgumentParser(description="Annotate the faces of a video and write them to a CSV file.")
    parser.add_argument("video", nargs="?", help="video file or camera index (default: a demo clip)")
    parser.add_argument("--output", type=Path, default=Path("annotated.mp4"), help="annotated video (default: annotated.mp4)")
    parser.add_argument("--csv", type=Path, default=Path("faces.csv"), help="CSV table (default: faces.csv)")
    parser.add_argument("--every", type=int, default=1, help="process every N-th frame (default: 1)")
    arguments = parser.parse_args()

    source = arguments.video
    if source is None:
        if not DEFAULT_PHOTO.is_file():
            sys.exit(f"Photo not found: '{DEFAULT_PHOTO}'. Pass a video: python examples/annotate_video.py VIDEO")
        source = str(write_demo_clip(DEFAULT_PHOTO, Path("demo-input.avi")))

    pipeline = Pipeline()
    smoothed_labels: dict[int, list[str]] = defaultdict(list)
    raw_labels: dict[int, list[str]] = defaultdict(list)
    processor = pipeline.process_video(
        source, output=arguments.output, csv_path=arguments.csv, every=arguments.every, keep_frames=True
    )
    try:
        for frame in processor:
            # The result contains smoothed probabilities. Classifying the same boxes again gives each frame's own.
            raw = pipeline.classify([frame.image], [frame.result.detections])[0]
            for track_id, label, raw_label in zip(frame.result.track_ids.tolist(), frame.result.labels, raw.labels):
                smoothed_labels[track_id].append(label)
                raw_labels[track_id].append(raw_label)
    except KeyboardInterrupt:
        # Ctrl-C ends a camera run. The processor has closed its output files by now.
        pass

    stats = processor.stats
    print(f"{stats.frames_read} frames read, {stats.frames_processed} processed, {stats.faces} faces in {stats.tracks} tracks.")
    for track_id, labels in sorted(smoothed_labels.items()):
        print(
            f"face {track_id}: {len(labels)} frames, final label {labels[-1]}, label changes: "
            f"{count_changes(raw_labels[track_id])} frame by frame, {count_changes(labels)} smoothed"
        )
    print(f"Wrote {arguments.output} and {arguments.csv}")
    return 1 if stats.frames_unreadable else 0


if __name__ == "__main__":
    raise SystemExit(main())
