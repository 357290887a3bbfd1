"""Sub-command `emodetect video`: classify the faces of a video file or a camera, frame by frame.

This module is imported whenever the `emodetect` parser is built, so it imports OpenCV, TensorFlow and the
pipeline only inside the handler.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Optional, TextIO

PROGRESS_INTERVAL = 0.25
"""Seconds between two redraws of the progress bar."""

PROGRESS_WIDTH = 30
"""Characters of the progress bar itself."""


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the `video` sub-command to the `emodetect` parser."""
    video = commands.add_parser(
        "video",
        help="detect and classify faces in a video file or a camera",
        description=(
            "Read a video file or a camera frame by frame, detect and classify every face, and write an annotated "
            "video, a CSV table and JSON Lines. Faces keep an id from frame to frame, and each face's "
            "probabilities are smoothed over time so that its label does not flicker. The tables are flushed "
            "after every frame, so they stay valid if the run is interrupted. Stop a camera with Ctrl-C."
        ),
    )

    video.add_argument("source", metavar="SOURCE", help="video file, or camera index such as 0")
    video.add_argument(
        "--output",
        "-o",
        type=Path,
        metavar="FILE",
        help="annotated copy of the video: .mp4, .m4v or .mov (MPEG-4 codec), .avi or .mkv (Motion JPEG). "
        "An .avi file stays readable even if the run is killed",
    )
    video.add_argument("--csv", type=Path, dest="csv_file", metavar="FILE", help="CSV table, one row per face per processed frame")
    video.add_argument("--jsonl", type=Path, dest="jsonl_file", metavar="FILE", help="JSON Lines, one object per processed frame")

    video.add_argument("--every", type=int, default=1, metavar="N", help="process every N-th frame (default: 1, every frame)")
    video.add_argument("--max-frames", type=int, metavar="N", help="stop after reading N frames (default: read to the end)")
    video.add_argument(
        "--scan-every",
        type=int,
        metavar="N",
        # The default is emodetect.stream.DEFAULT_SCAN_EVERY, written out because importing that module here
        # would load NumPy for every `emodetect --help`.
        help="scan every N-th processed frame whole for new faces, and in between only a region around the faces "
        "of the previous frame, which is faster; 1 scans every frame whole (default: 5)",
    )

    video.add_argument(
        "--smoothing",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="time constant of the moving average of each face's probabilities, in seconds, where 0 turns "
        "smoothing off (default: 0.5)",
    )
    video.add_argument(
        "--no-tracking",
        action="store_true",
        help="classify each frame on its own: no face ids and no smoothing",
    )

    video.add_argument(
        "--detector",
        help="detector name (default: ssd, falling back to haar when the SSD weights cannot be had)",
    )
    video.add_argument("--classifier", default="happy-sad", help="classifier name or .keras model file (default: happy-sad)")
    video.add_argument("--threshold", type=float, help="minimum detector confidence in [0, 1] (default: 0.5)")

    video.add_argument("--no-progress", action="store_true", help="do not draw the progress bar on standard error")
    video.set_defaults(handler=run_video)


class ProgressBar:
    """A one-line progress bar for a video file, redrawn in place on a terminal.

    Args:
        stream: Where to draw, usually standard error.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.perf_counter()
        self._last_draw = -PROGRESS_INTERVAL
        self._drawn = False

    def __call__(self, frames_read: int, frames_total: Optional[int]) -> None:
        """Redraw the bar, at most every `PROGRESS_INTERVAL` seconds and on the last frame."""
        now = time.perf_counter()
        last_frame = frames_total is not None and frames_read >= frames_total
        if now - self._last_draw < PROGRESS_INTERVAL and not last_frame:
            return
        self._last_draw = now

        rate = frames_read / max(now - self.started, 1e-9)
        if frames_total:
            fraction = min(frames_read / frames_total, 1.0)
            filled = int(round(fraction * PROGRESS_WIDTH))
            bar = "#" * filled + "-" * (PROGRESS_WIDTH - filled)
            line = f"{fraction:4.0%} [{bar}] {frames_read}/{frames_total} frames, {rate:.1f} frames/s"
        else:
            line = f"{frames_read} frames, {rate:.1f} frames/s"
        self.stream.write("\r" + line)
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """End the bar's line, if one was drawn."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def run_video(arguments: argparse.Namespace) -> int:
    """Handle `emodetect video`."""
    from emodetect.cli import EXIT_FAILED, EXIT_OK
    from emodetect.pipeline import Pipeline
    from emodetect.video import parse_source

    if arguments.threshold is not None and not 0.0 <= arguments.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], received {arguments.threshold}.")
    if arguments.every < 1:
        raise ValueError(f"--every must be 1 or more, received {arguments.every}.")
    if arguments.scan_every is not None and arguments.scan_every < 1:
        raise ValueError(f"--scan-every must be 1 or more, received {arguments.scan_every}.")
    if arguments.max_frames is not None and arguments.max_frames < 1:
        raise ValueError(f"--max-frames must be 1 or more, received {arguments.max_frames}.")
    if not (arguments.smoothing >= 0 and math.isfinite(arguments.smoothing)):
        raise ValueError(f"--smoothing must be a finite number of seconds, 0 or more, received {arguments.smoothing}.")

    # Check the source before loading the models, so a mistyped path fails at once.
    is_camera = isinstance(parse_source(arguments.source), int)
    pipeline = Pipeline(detector=arguments.detector, classifier=arguments.classifier, confidence_threshold=arguments.threshold)
    progress = None
    if not arguments.no_progress and not is_camera and sys.stderr.isatty():
        progress = ProgressBar(sys.stderr)

    processor = pipeline.process_video(
        arguments.source,
        output=arguments.output,
        csv_path=arguments.csv_file,
        jsonl_path=arguments.jsonl_file,
        every=arguments.every,
        tracking=not arguments.no_tracking,
        time_constant=arguments.smoothing,
        max_frames=arguments.max_frames,
        progress=progress,
        **({} if arguments.scan_every is None else {"scan_every": arguments.scan_every}),
    )
    interrupted = False
    try:
        processor.run()
    except KeyboardInterrupt:
        # Ctrl-C is how a camera run ends. The processor has already closed its files when this is caught.
        interrupted = True
    finally:
        if progress is not None:
            progress.finish()

    stats = processor.stats
    rate = stats.frames_read / stats.seconds if stats.seconds > 0 else 0.0
    tracks = "" if arguments.no_tracking else f" in {stats.tracks} track{'s' if stats.tracks != 1 else ''}"
    stopped = ", stopped by Ctrl-C" if interrupted else ""
    print(
        f"{processor.reader.name}: read {stats.frames_read} frames, processed {stats.frames_processed}, found "
        f"{stats.faces} faces{tracks} ({rate:.1f} frames/s, detector {pipeline.detector.name}, "
        f"{stats.full_scans} full scans{stopped})."
    )
    for label, path in (("annotated video", arguments.output), ("CSV", arguments.csv_file), ("JSON Lines", arguments.jsonl_file)):
        if path is not None:
            print(f"Wrote {label} to {path}")

    if stats.frames_unreadable:
        print(
            f"emodetect: error: {processor.reader.name} has {stats.frames_unreadable} unreadable frames "
            f"({stats.frames_damaged} damaged, {stats.frames_missing} missing of the {stats.frames_expected} its "
            f"header reports). Every readable frame was processed.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK
