"""Video input and output: read a file or a camera frame by frame, classify faces, write annotated video and tables.

`Pipeline.process_video` is the entry point. It returns a `VideoProcessor`, which yields one
`VideoFrameResult` per processed frame and writes its outputs while it goes:

- an annotated copy of the video (`output`), written with OpenCV's FFmpeg backend: MPEG-4 Part 2
  (`mp4v`) for `.mp4`, `.m4v` and `.mov`, Motion JPEG for `.avi` and `.mkv`;
- a CSV table with one row per face per processed frame (`csv_path`);
- a JSON Lines file with one object per processed frame (`jsonl_path`).

The CSV and JSON Lines files are flushed after every frame, so a crash or Ctrl-C leaves a valid file that
covers every frame processed until then. The annotated video is finalised when the processor closes, which
also happens on an exception or Ctrl-C. If the process is killed, an `.mp4` file is unreadable (MP4 keeps
its index at the end), while an `.avi` file stays readable up to the last frame written.

Damaged input: a frame that FFmpeg cannot decode is skipped, and every frame before and after it is
processed. Where the next readable frame's timestamp shows the gap (MP4 and other containers with
per-frame timestamps), the skipped frames are counted in `VideoStats.frames_damaged` and the later frames
keep their true indices. A file that yields fewer frames than its header reports, because it was cut off or
because the decoder dropped damaged frames without a gap in the timestamps (AVI), has the shortfall counted
in `VideoStats.frames_missing`. Either way the outputs stay valid and cover every readable frame.

Colour convention: every frame is a BGR `uint8` array of shape `(height, width, 3)`, as OpenCV decodes it.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Optional, Union

import cv2
import numpy as np

from emodetect.drawing import annotate
from emodetect.errors import EmodetectError
from emodetect.images import resolve_path
from emodetect.results import PipelineResult
from emodetect.stream import DEFAULT_SCAN_EVERY, StreamProcessor
from emodetect.tracking import DEFAULT_TIME_CONSTANT

if TYPE_CHECKING:
    from emodetect.pipeline import Pipeline

logger = logging.getLogger(__name__)

VideoSource = Union[int, str, "os.PathLike[str]"]
ProgressCallback = Callable[[int, Optional[int]], None]

OUTPUT_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
"""Output file suffix to the FourCC of the codec the annotated video is written with."""

MAX_READ_RETRIES = 8
"""Further reads tried after a failed read before a file is taken as ended before its reported frame count."""

MAX_CAMERA_FAILURES = 30
"""Failed reads in a row after which a camera is taken as disconnected."""

FALLBACK_FPS = 30.0
"""Frame rate assumed for timestamps and the output video when the source reports none (some cameras)."""


class VideoReadError(EmodetectError, ValueError):
    """A video file or camera cannot be opened or contains no readable frame."""


class VideoWriteError(EmodetectError, OSError):
    """An output video cannot be created with the requested container and codec."""


@dataclass
class VideoFrame:
    """One decoded frame.

    Attributes:
        index: 0-based frame number in the source. Damaged frames that were skipped keep their numbers, so
            the next readable frame's index jumps past them.
        timestamp: Seconds from the start of the video, or for a camera, seconds since it was opened.
        image: The BGR `uint8` frame.
    """

    index: int
    timestamp: float
    image: np.ndarray


@dataclass
class VideoFrameResult:
    """The faces found in one processed frame.

    Attributes:
        index: 0-based frame number in the source.
        timestamp: Seconds from the start of the video.
        result: The faces, with `track_ids` set when tracking is on.
        image: The BGR frame as decoded, without annotation, or `None` unless `keep_frames=True`.
    """

    index: int
    timestamp: float
    result: PipelineResult
    image: Optional[np.ndarray] = None


@dataclass
class VideoStats:
    """Counts of one run over a video, updated while the frames are processed.

    Attributes:
        frames_read: Frames decoded.
        frames_processed: Frames whose faces were detected and classified (every `every`-th frame read).
        frames_damaged: Frames skipped because they could not be decoded, found from a gap in the timestamps.
        frames_missing: Frames the file's header reports beyond the last frame read: the end of a cut-off
            file, or damaged frames that the decoder dropped without a gap in the timestamps.
        frames_expected: The frame count in the file's header, or `None` for cameras and streams without one.
        faces: Faces found, summed over processed frames.
        tracks: Distinct face ids given (0 without tracking).
        full_scans: Processed frames that the detector scanned whole; the others were scanned only in a
            region around the previous frame's faces (see `emodetect.stream`).
        seconds: Wall-clock time spent, in seconds.
    """

    frames_read: int = 0
    frames_processed: int = 0
    frames_damaged: int = 0
    frames_missing: int = 0
    frames_expected: Optional[int] = None
    faces: int = 0
    tracks: int = 0
    full_scans: int = 0
    seconds: float = 0.0

    @property
    def frames_unreadable(self) -> int:
        """Frames that could not be read: damaged plus missing."""
        return self.frames_damaged + self.frames_missing


def parse_source(source: VideoSource) -> Union[int, Path]:
    """Turn a `source` argument into a camera index or a file path.

    Args:
        source: A camera index (`0` is the first camera), a string of digits meaning the same, or the path of
            a video file.

    Returns:
        An `int` for a camera, a `Path` for a file.

    Raises:
        VideoReadError: The file does not exist or is a folder, or the camera index is negative.
    """
    if isinstance(source, bool) or not isinstance(source, (int, np.integer, str, os.PathLike)):
        raise VideoReadError(f"Expected a camera index or a video file path, received {source!r}.")
    if isinstance(source, (int, np.integer)) or (isinstance(source, str) and source.isdigit()):
        index = int(source)
        if index < 0:
            raise VideoReadError(f"Expected a camera index >= 0, received {index}.")
        return index

    path = Path(source)
    if not path.exists():
        raise VideoReadError(f"Video file not found: '{path}'. Pass an existing file, or a camera index such as 0.")
    if path.is_dir():
        raise VideoReadError(f"Expected a video file, received a folder: '{path}'.")
    return path


class VideoReader:
    """Read the frames of a video file or a camera, skipping damaged frames.

    The source is opened when the reader is built, so an unreadable source fails at once with a message
    that names it.

    Args:
        source: A camera index, a string of digits, or a video file path (see `parse_source`).

    Attributes:
        fps: The frame rate the source reports, or `None` when it reports none.
        frame_count: The frame count in a file's header, or `None` for cameras and files without one.
        frames_damaged: Frames skipped so far because they could not be decoded (see `VideoStats`).
        frames_missing: Frames the header reports beyond the last frame read, known once reading ended.

    Raises:
        VideoReadError: The file is missing, is not a video OpenCV can decode, or the camera cannot be opened.
    """

    def __init__(self, source: VideoSource) -> None:
        self.source = parse_source(source)
        self.is_camera = isinstance(self.source, int)
        self.name = f"camera {self.source}" if self.is_camera else str(self.source)
        self._capture = cv2.VideoCapture(self.source if self.is_camera else str(self.source))
        if not self._capture.isOpened():
            self._capture.release()
            raise VideoReadError(self._open_error())

        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps: Optional[float] = float(fps) if fps and fps > 0 and np.isfinite(fps) else None
        count = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count: Optional[int] = int(count) if not self.is_camera and count and count > 0 else None
        self.frames_damaged = 0
        self.frames_missing = 0
        self._started = False

    def _open_error(self) -> str:
        if self.is_camera:
            return (
                f"Cannot open camera {self.source}: OpenCV found no such camera or it is in use. Check that it "
                f"is connected and that no other program uses it, or try another index."
            )
        path = Path(self.source)
        size = path.stat().st_size
        with path.open("rb") as handle:
            start = handle.read(12)
        hint = ""
        if start[4:8] == b"ftyp":
            hint = (
                " The file starts like an MP4/MOV file. Such a file cut off before its end has lost its index (moov "
                "atom) and cannot be read."
            )
        return (
            f"Cannot open '{path}' as a video ({size} bytes, starts with {start!r}). Expected a video file that "
            f"OpenCV's FFmpeg backend can decode, such as MP4, AVI, MKV or MOV.{hint}"
        )

    def __iter__(self) -> Iterator[VideoFrame]:
        """Yield the frames in order.

        Raises:
            VideoReadError: The source contains no readable frame at all.
            RuntimeError: The reader was already iterated.
        """
        if self._started:
            raise RuntimeError("A VideoReader can be iterated only once. Build a new one to read the source again.")
        self._started = True
        return self._camera_frames() if self.is_camera else self._file_frames()

    def _camera_frames(self) -> Iterator[VideoFrame]:
        start = time.monotonic()
        index = 0
        failures = 0
        while True:
            ok, image = self._capture.read()
            if not ok:
                failures += 1
                if failures >= MAX_CAMERA_FAILURES:
                    if index == 0:
                        raise VideoReadError(f"Camera {self.source} opened but delivered no frame.")
                    logger.warning("Camera %s stopped delivering frames after %d frames", self.source, index)
                    return
                continue
            failures = 0
            yield VideoFrame(index, time.monotonic() - start, image)
            index += 1

    def _file_frames(self) -> Iterator[VideoFrame]:
        last_index = -1
        previous_milliseconds = -1.0
        previous_timestamp = 0.0
        failed_reads = 0
        while True:
            ok, image = self._capture.read()
            if not ok:
                if self._more_frames_expected(last_index) and failed_reads < MAX_READ_RETRIES:
                    # A read can fail on a damaged frame that later frames do not depend on, so read on.
                    failed_reads += 1
                    continue
                break

            milliseconds = self._capture.get(cv2.CAP_PROP_POS_MSEC)
            timestamps_valid = milliseconds > previous_milliseconds or last_index < 0

            # FFmpeg drops a frame it cannot decode without reporting it, but the gap in the timestamps shows it.
            # The gap is measured from the previous frame, not from the start, so that the jitter of a variable
            # frame rate does not add up to false gaps. A gap under 1.5 frame durations counts as none.
            index = last_index + 1 + failed_reads
            if self.fps is not None and timestamps_valid and last_index >= 0:
                frames_in_gap = round((milliseconds - previous_milliseconds) * self.fps / 1000.0) - 1
                index = max(index, last_index + 1 + frames_in_gap)
            skipped = index - last_index - 1
            if skipped > 0:
                self.frames_damaged += skipped
                logger.warning(
                    "Skipped %d damaged frame%s before frame %d of %s", skipped, "s" if skipped > 1 else "", index, self.name
                )

            # Timestamps never decrease, because the tracker's smoothing depends on the time between frames.
            if timestamps_valid:
                timestamp = max(milliseconds / 1000.0, previous_timestamp)
                previous_milliseconds = milliseconds
            else:
                timestamp = previous_timestamp + (index - last_index) / (self.fps or FALLBACK_FPS)
            previous_timestamp = timestamp
            last_index = index
            failed_reads = 0
            yield VideoFrame(index, timestamp, image)

        if last_index < 0:
            raise VideoReadError(f"'{self.name}' opened as a video but contains no readable frame.")
        if self._more_frames_expected(last_index):
            assert self.frame_count is not None  # _more_frames_expected is False without a frame count.
            self.frames_missing = self.frame_count - last_index - 1
            logger.warning(
                "The header of %s reports %d frames, but reading stopped after frame %d: %d frames are damaged "
                "or missing, at the end of a cut-off file or dropped by the decoder without a trace. Every "
                "readable frame was processed.",
                self.name,
                self.frame_count,
                last_index,
                self.frames_missing,
            )

    def _more_frames_expected(self, last_index: int) -> bool:
        return self.frame_count is not None and last_index + 1 < self.frame_count

    def close(self) -> None:
        """Release the file or camera."""
        self._capture.release()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_video_writer(path: Path, fps: float, frame_size: tuple[int, int]) -> "cv2.VideoWriter":
    """Create an OpenCV video writer, choosing the codec from the file suffix (see `OUTPUT_CODECS`).

    Args:
        path: The output file. Its folder is created if missing.
        fps: Frames per second written in the file's header.
        frame_size: `(width, height)` of the frames.

    Returns:
        An opened `cv2.VideoWriter` that takes BGR `uint8` frames of that size.

    Raises:
        VideoWriteError: The suffix is not supported, or OpenCV cannot create the file with that codec.
    """
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_CODECS:
        raise VideoWriteError(
            f"Cannot write a video to '{path}': expected a file name ending with one of "
            f"{', '.join(sorted(OUTPUT_CODECS))}, received '{suffix or '(no suffix)'}'."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = OUTPUT_CODECS[suffix]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, frame_size)
    if not writer.isOpened():
        raise VideoWriteError(
            f"OpenCV cannot create '{path}' with the {fourcc} codec at {frame_size[0]}x{frame_size[1]}, {fps:g} fps. "
            f"Try another suffix ({', '.join(sorted(OUTPUT_CODECS))}) or check that the folder is writable."
        )
    return writer


def csv_header(class_names: tuple[str, ...]) -> list[str]:
    """Return the column names of the per-face CSV table for a classifier's labels."""
    return [
        "frame",
        "timestamp",
        "face_id",
        "x1",
        "y1",
        "x2",
        "y2",
        "detection_score",
        "label",
        "score",
        *(f"p_{name}" for name in class_names),
    ]


def csv_rows(frame_index: int, timestamp: float, result: PipelineResult) -> list[list[object]]:
    """Return one CSV row per face, with an empty `face_id` for untracked faces."""
    rows: list[list[object]] = []
    for face in range(len(result)):
        probabilities = result.probabilities[face]
        track_id = int(result.track_ids[face])
        rows.append(
            [
                frame_index,
                f"{timestamp:.3f}",
                track_id if track_id >= 0 else "",
                *(f"{value:.1f}" for value in result.boxes[face]),
                f"{result.scores[face]:.4f}",
                result.class_names[int(probabilities.argmax())],
                f"{probabilities.max():.4f}",
                *(f"{value:.4f}" for value in probabilities),
            ]
        )
    return rows


def draw_track_ids(image: np.ndarray, result: PipelineResult) -> None:
    """Write each tracked face's id under its box, in place on a BGR `uint8` image."""
    thickness = max(1, round(max(image.shape[:2]) / 400))
    font_scale = max(0.4, max(image.shape[:2]) / 1200)
    for box, track_id in zip(result.boxes, result.track_ids):
        if track_id < 0:
            continue
        caption = f"id {int(track_id)}"
        (_, text_height), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        x1, y2 = int(round(box[0])), int(round(box[3]))
        # Below the box when it fits in the image, otherwise inside the box's bottom edge.
        y = y2 + text_height + baseline if y2 + text_height + baseline < image.shape[0] else y2 - baseline
        cv2.putText(image, caption, (x1, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thickness + 2, cv2.LINE_AA)
        cv2.putText(image, caption, (x1, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thickness, cv2.LINE_AA)


@dataclass
class _Outputs:
    """The files one video run writes, opened on the first frame."""

    video_path: Optional[Path]
    csv_path: Optional[Path]
    jsonl_path: Optional[Path]
    writer: Optional["cv2.VideoWriter"] = None
    csv_file: Optional[IO[str]] = None
    csv_writer: Optional["csv._writer"] = None
    jsonl_file: Optional[IO[str]] = None
    files: list[IO[str]] = field(default_factory=list)

    def open_tables(self, class_names: tuple[str, ...]) -> None:
        if self.csv_path is not None:
            self.csv_path.parent.mkdir(parents=True, exist_ok=True)
            self.csv_file = self.csv_path.open("w", newline="", encoding="utf-8")
            self.files.append(self.csv_file)
            self.csv_writer = csv.writer(self.csv_file)
            self.csv_writer.writerow(csv_header(class_names))
            self.csv_file.flush()
        if self.jsonl_path is not None:
            self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
            self.jsonl_file = self.jsonl_path.open("w", encoding="utf-8")
            self.files.append(self.jsonl_file)

    def write_tables(self, frame: VideoFrame, result: PipelineResult) -> None:
        if self.csv_writer is not None and self.csv_file is not None:
            self.csv_writer.writerows(csv_rows(frame.index, frame.timestamp, result))
            self.csv_file.flush()
        if self.jsonl_file is not None:
            record = {"frame": frame.index, "timestamp": round(frame.timestamp, 3), "faces": result.to_dict()["faces"]}
            self.jsonl_file.write(json.dumps(record) + "\n")
            self.jsonl_file.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        for handle in self.files:
            handle.close()
        self.files = []


def _check_output_paths(source: Union[int, Path], outputs: _Outputs) -> None:
    """Raise `VideoWriteError` when an output file is the source video or another output file.

    The outputs are opened for writing while the source is still being read, so either would destroy a file.
    """
    named = [
        ("annotated video", outputs.video_path, "annotated.mp4"),
        ("CSV", outputs.csv_path, "faces.csv"),
        ("JSON Lines", outputs.jsonl_path, "faces.jsonl"),
    ]
    seen: dict[Path, str] = {} if isinstance(source, int) else {resolve_path(source): "input video"}
    for kind, path, example in named:
        if path is None:
            continue
        resolved = resolve_path(path)
        if resolved in seen:
            raise VideoWriteError(
                f"The {kind} path '{path}' is also the {seen[resolved]}, which writing it would destroy. "
                f"Choose another file name."
            )
        if resolved.is_dir():
            raise VideoWriteError(f"The {kind} path '{path}' is a folder. Add a file name, such as '{path / example}'.")
        seen[resolved] = f"{kind} path"


class VideoProcessor:
    """Run a pipeline over a video file or a camera, frame by frame.

    Iterate over it to get one `VideoFrameResult` per processed frame, or call `run()` to process the whole
    video for its output files. The source is opened when the processor is built, and the output files
    when the first frame is processed. Each processed frame goes through a `StreamProcessor`: the detector
    scans the whole frame or a region around the previous faces, and the classifier runs once for all of its
    faces.

    Args:
        pipeline: The pipeline whose detector and classifier are used.
        source: A camera index, a string of digits, or a video file path.
        output: Path of an annotated copy of the video (the module docstring lists the codecs). Every frame
            read is written, and frames between processed ones carry the last processed frame's boxes.
        csv_path: Path of a CSV table with one row per face per processed frame.
        jsonl_path: Path of a JSON Lines file with one object per processed frame.
        every: Process every `every`-th frame read (1 processes all of them).
        tracking: Give faces ids that persist across frames and smooth their probabilities.
        time_constant: EMA time constant in seconds for the smoothing (see `emodetect.tracking`). 0 keeps
            ids but turns smoothing off. Ignored without tracking.
        scan_every: Scan each `scan_every`-th processed frame whole, and only a region around the previous
            faces in between (see `emodetect.stream`). 1 scans every processed frame whole.
        max_frames: Stop after reading this many frames. `None` reads to the end, or until Ctrl-C for a
            camera.
        progress: Called after each frame read with the frames read so far and the frame count in the
            file's header (`None` for cameras).
        keep_frames: Put each processed frame's image in its `VideoFrameResult`.

    Raises:
        VideoReadError: The source cannot be opened.
        VideoWriteError: The output suffix is not supported, or an output path is the source video, another
            output's path or a folder.
        ValueError: `every`, `scan_every` or `max_frames` is below 1.
    """

    def __init__(
        self,
        pipeline: "Pipeline",
        source: VideoSource,
        output: Union[str, "os.PathLike[str]", None] = None,
        csv_path: Union[str, "os.PathLike[str]", None] = None,
        jsonl_path: Union[str, "os.PathLike[str]", None] = None,
        every: int = 1,
        tracking: bool = True,
        time_constant: float = DEFAULT_TIME_CONSTANT,
        max_frames: Optional[int] = None,
        progress: Optional[ProgressCallback] = None,
        keep_frames: bool = False,
        scan_every: int = DEFAULT_SCAN_EVERY,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"Expected an integer every >= 1 (1 processes every frame), received {every!r}.")
        if max_frames is not None and (
            isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1
        ):
            raise ValueError(f"Expected an integer max_frames >= 1 or None, received {max_frames!r}.")
        output_path = Path(output) if output is not None else None
        if output_path is not None and output_path.suffix.lower() not in OUTPUT_CODECS:
            raise VideoWriteError(
                f"Cannot write a video to '{output_path}': expected a file name ending with one of "
                f"{', '.join(sorted(OUTPUT_CODECS))}."
            )

        self.pipeline = pipeline
        self.every = every
        self.max_frames = max_frames
        self.progress = progress
        self.keep_frames = keep_frames
        self.stream = StreamProcessor(pipeline, tracking=tracking, time_constant=time_constant, scan_every=scan_every)
        self._outputs = _Outputs(
            output_path,
            Path(csv_path) if csv_path is not None else None,
            Path(jsonl_path) if jsonl_path is not None else None,
        )
        _check_output_paths(parse_source(source), self._outputs)
        self.reader = VideoReader(source)
        self.stats = VideoStats(frames_expected=self.reader.frame_count)
        self._started = False

    @property
    def fps(self) -> Optional[float]:
        """The source's frame rate, or `None` when it reports none."""
        return self.reader.fps

    def __iter__(self) -> Iterator[VideoFrameResult]:
        """Yield the result of every processed frame, writing the outputs as it goes.

        Raises:
            VideoReadError: The source contains no readable frame.
            VideoWriteError: The output video cannot be created.
            RuntimeError: The processor was already iterated.
        """
        if self._started:
            raise RuntimeError("A VideoProcessor can be iterated only once. Call process_video again to reprocess the source.")
        self._started = True
        return self._process()

    def run(self) -> VideoStats:
        """Process the whole video (or `max_frames` frames) and return the counts."""
        for _ in self:
            pass
        return self.stats

    def _process(self) -> Iterator[VideoFrameResult]:
        started = time.perf_counter()
        last_result: Optional[PipelineResult] = None
        try:
            self._outputs.open_tables(self.pipeline.class_names)
            for frame in self.reader:
                self.stats.frames_read += 1
                self.stats.frames_damaged = self.reader.frames_damaged

                processed = (self.stats.frames_read - 1) % self.every == 0
                if processed:
                    last_result = self._process_frame(frame)
                    self._outputs.write_tables(frame, last_result)

                assert last_result is not None  # The first frame read is always processed.
                if self._outputs.video_path is not None:
                    # Draw on a copy only when the caller gets the frame, which must stay as decoded.
                    self._write_frame(frame, last_result, copy=processed and self.keep_frames)
                if processed:
                    yield VideoFrameResult(frame.index, frame.timestamp, last_result, frame.image if self.keep_frames else None)

                self.stats.seconds = time.perf_counter() - started
                if self.progress is not None:
                    self.progress(self.stats.frames_read, self.stats.frames_expected)
                if self.max_frames is not None and self.stats.frames_read >= self.max_frames:
                    break
        finally:
            self.stats.frames_damaged = self.reader.frames_damaged
            self.stats.frames_missing = self.reader.frames_missing
            self.stats.seconds = time.perf_counter() - started
            self.close()

    def _process_frame(self, frame: VideoFrame) -> PipelineResult:
        result = self.stream.process(frame.image, frame.timestamp)
        if self.stream.tracker is not None:
            self.stats.tracks = self.stream.tracker.tracks_created
        self.stats.full_scans = self.stream.scans.full
        self.stats.frames_processed += 1
        self.stats.faces += len(result)
        return result

    def _write_frame(self, frame: VideoFrame, result: PipelineResult, copy: bool) -> None:
        outputs = self._outputs
        assert outputs.video_path is not None  # Only called when an output video was requested.
        if outputs.writer is None:
            height, width = frame.image.shape[:2]
            outputs.writer = open_video_writer(outputs.video_path, self.reader.fps or FALLBACK_FPS, (width, height))
        # A stream that changes resolution gives frames that the boxes do not fit, so those are written plain.
        if tuple(frame.image.shape[:2]) == result.image_size:
            canvas = annotate(frame.image, result, copy=copy)
            draw_track_ids(canvas, result)
        else:
            canvas = frame.image
        outputs.writer.write(canvas)

    def close(self) -> None:
        """Finalise the output files and release the source. Calling it again does nothing."""
        self._outputs.close()
        self.reader.close()

    def __enter__(self) -> "VideoProcessor":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
