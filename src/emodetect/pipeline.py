"""`Pipeline`: images in, faces with boxes, labels and probabilities out."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Union, overload

import numpy as np

from emodetect.classifiers import EmotionClassifier, create_classifier
from emodetect.detectors import Detector, create_detector
from emodetect.errors import EmodetectError, WeightsError
from emodetect.images import PathLike, crop_face, load_image, to_bgr
from emodetect.results import Detections, PipelineResult
from emodetect.stream import DEFAULT_SCAN_EVERY
from emodetect.tracking import DEFAULT_TIME_CONSTANT

if TYPE_CHECKING:
    from emodetect.stream import StreamProcessor
    from emodetect.video import VideoProcessor

logger = logging.getLogger(__name__)

ImageInput = Union[PathLike, np.ndarray]

FALLBACK_DETECTOR = "haar"


@dataclass
class ItemOutcome:
    """The outcome for one input of `Pipeline.run`: its result, or the error that stopped it."""

    source: str
    result: Optional[PipelineResult] = None
    error: Optional[EmodetectError] = None
    image: Optional[np.ndarray] = None


def _describe(item: object) -> str:
    """Name an input for messages and results: its path, `<array>`, or its type."""
    if isinstance(item, np.ndarray):
        return "<array>"
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)  # type: ignore[return-value]
    return f"<{type(item).__name__}>"


class Pipeline:
    """Detect faces and classify each one's expression.

    Args:
        detector: A registered detector name (`"ssd"`, `"haar"`, ...), a `Detector`, or `None`. With `None`
            the SSD is used, and if its weights cannot be had the pipeline falls back to the Haar cascade with
            a warning. A name given explicitly never falls back: its errors are raised.
        classifier: A registered classifier name (default `"happy-sad"`), the path of a saved `.keras`
            model, or an `EmotionClassifier`.
        confidence_threshold: Minimum detector confidence, in [0, 1]; used when the pipeline builds the
            detector from a name (the backend's default when `None`).
        images_per_batch: Images processed together: their faces go to the classifier in one call.

    Raises:
        WeightsError: An explicitly named detector's weights cannot be had.
        UnknownBackendError: A name is not registered.

    Examples:
        >>> import numpy as np
        >>> pipeline = Pipeline(detector="haar")
        >>> result = pipeline(np.zeros((240, 320, 3), np.uint8))
        >>> len(result), result.class_names
        (0, ('happy', 'sad'))
    """

    def __init__(
        self,
        detector: Union[str, Detector, None] = None,
        classifier: Union[str, "os.PathLike[str]", EmotionClassifier] = "happy-sad",
        confidence_threshold: Optional[float] = None,
        images_per_batch: int = 16,
    ) -> None:
        if not isinstance(images_per_batch, int) or images_per_batch < 1:
            raise ValueError(f"Expected an integer images_per_batch >= 1, received {images_per_batch!r}.")

        self.detector = self._build_detector(detector, confidence_threshold)
        if isinstance(classifier, EmotionClassifier):
            self.classifier = classifier
        else:
            self.classifier = create_classifier(os.fspath(classifier))
        self.images_per_batch = images_per_batch

    @staticmethod
    def _build_detector(detector: Union[str, Detector, None], confidence_threshold: Optional[float]) -> Detector:
        if isinstance(detector, Detector):
            if confidence_threshold is not None:
                raise ValueError(
                    "confidence_threshold applies only when the pipeline builds the detector from a name; "
                    "set the threshold on your Detector instead."
                )
            return detector

        options = {} if confidence_threshold is None else {"confidence_threshold": confidence_threshold}
        if detector is not None:
            return create_detector(detector, **options)

        try:
            return create_detector("ssd", **options)
        except WeightsError as error:
            logger.warning(
                "The SSD face detector is unavailable, so emodetect falls back to the '%s' detector, which misses "
                "more faces.\n%s",
                FALLBACK_DETECTOR,
                error,
            )
            return create_detector(FALLBACK_DETECTOR, **options)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classifier's labels, in the column order of `PipelineResult.probabilities`."""
        return tuple(self.classifier.class_names)

    @overload
    def __call__(self, images: ImageInput) -> PipelineResult: ...

    @overload
    def __call__(self, images: Sequence[ImageInput]) -> list[PipelineResult]: ...

    def __call__(self, images: Union[ImageInput, Sequence[ImageInput]]) -> Union[PipelineResult, list[PipelineResult]]:
        """Find and classify the faces of one image or of several.

        Args:
            images: A file path, a BGR `uint8` array (as `cv2.imread` returns; convert RGB arrays with
                `image[..., ::-1]` first), or a list of those.

        Returns:
            One `PipelineResult` for a single input, a list for a list. An image without a face gives an
            empty result.

        Raises:
            ImageReadError: An input cannot be read; no result is returned for the others. Use `run` to
                skip unreadable inputs instead.
        """
        # A 4-D array is one input here too, so that it fails as a bad image instead of returning a list.
        single = isinstance(images, np.ndarray) or _is_single_input(images)
        items: Sequence[ImageInput] = [images] if single else list(images)  # type: ignore[list-item]

        results = []
        for outcome in self.run(items, skip_errors=False):
            assert outcome.result is not None  # run() raises instead of yielding errors when skip_errors=False.
            results.append(outcome.result)
        return results[0] if single else results

    def run(
        self,
        images: Iterable[ImageInput],
        skip_errors: bool = True,
        keep_images: bool = False,
    ) -> Iterator[ItemOutcome]:
        """Process many images lazily, in batches, yielding one outcome per input in input order.

        Args:
            images: Paths or BGR arrays, or a 4-D array of stacked images. A single path or image array
                counts as one input, and so does a value that is not iterable, such as the `None` that
                `cv2.imread` returns for a missing file, which then fails to load.
            skip_errors: Yield an outcome holding the error for an unreadable input and go on; with `False`
                the error is raised.
            keep_images: Keep each decoded BGR image in its outcome, for drawing.

        Yields:
            One `ItemOutcome` per input.
        """
        if _is_single_input(images):
            images = [images]  # type: ignore[list-item]

        batch: list[tuple[str, ImageInput]] = []
        for item in images:
            batch.append((_describe(item), item))
            if len(batch) == self.images_per_batch:
                yield from self._process_batch(batch, skip_errors, keep_images)
                batch = []
        if batch:
            yield from self._process_batch(batch, skip_errors, keep_images)

    def _process_batch(
        self, batch: list[tuple[str, ImageInput]], skip_errors: bool, keep_images: bool
    ) -> Iterator[ItemOutcome]:
        loaded: list[tuple[int, np.ndarray]] = []
        outcomes = [ItemOutcome(source=source) for source, _ in batch]
        for index, (source, item) in enumerate(batch):
            try:
                loaded.append((index, load_image(item)))
            except EmodetectError as error:
                if not skip_errors:
                    raise
                logger.warning("Skipping %s: %s", source, error)
                outcomes[index].error = error

        images = [image for _, image in loaded]
        detections = self.detector.detect_batch(images) if images else []
        results = self.classify(images, detections)
        for (index, image), result in zip(loaded, results):
            result.source = None if outcomes[index].source.startswith("<") else outcomes[index].source
            outcomes[index].result = result
            if keep_images:
                outcomes[index].image = image
        yield from outcomes

    def classify(self, images: Sequence[np.ndarray], detections: Sequence[Detections]) -> list[PipelineResult]:
        """Classify the faces at given boxes, all images' faces in one classifier call.

        Args:
            images: BGR `uint8` images. Greyscale, BGRA and other pixel types are converted as `to_bgr`
                converts them, so that the crops match what the detector saw.
            detections: The boxes of each image.

        Returns:
            One result per image.

        Raises:
            ValueError: `images` and `detections` differ in length.
        """
        if len(images) != len(detections):
            raise ValueError(f"Expected one Detections per image, received {len(images)} images and {len(detections)}.")

        # Detectors convert their input with to_bgr, so a float or uint16 frame cropped as it is would give
        # the classifier other pixel values than the detector saw.
        images = [to_bgr(image) for image in images]

        # Boxes from a plugin detector or from the caller may leave the image. Clipping them as the built-in
        # detectors do keeps every crop inside the image's pixels.
        detections = [Detections.from_boxes(found.boxes, found.scores, image.shape) for image, found in zip(images, detections)]
        crops = [
            crop_face(image, box, self.classifier.crop_margin)
            for image, found in zip(images, detections)
            for box in found.boxes
        ]
        probabilities = self.classifier.predict_proba(crops)

        results = []
        start = 0
        for image, found in zip(images, detections):
            stop = start + len(found)
            results.append(
                PipelineResult(
                    boxes=found.boxes,
                    scores=found.scores,
                    probabilities=probabilities[start:stop],
                    class_names=self.class_names,
                    image_size=image.shape[:2],
                )
            )
            start = stop
        return results

    def process_video(
        self,
        source: Union[int, PathLike],
        output: Optional[PathLike] = None,
        csv_path: Optional[PathLike] = None,
        jsonl_path: Optional[PathLike] = None,
        every: int = 1,
        tracking: bool = True,
        time_constant: float = DEFAULT_TIME_CONSTANT,
        max_frames: Optional[int] = None,
        progress: Optional[Callable[[int, Optional[int]], None]] = None,
        keep_frames: bool = False,
        scan_every: int = DEFAULT_SCAN_EVERY,
    ) -> "VideoProcessor":
        """Detect and classify the faces of a video file or a camera, frame by frame.

        Tracking is on by default: faces keep an id across frames and each face's probabilities are
        smoothed with an exponential moving average of time constant `time_constant` seconds (see
        `emodetect.tracking`). Still images are never tracked.

        Args:
            source: A camera index (`0` is the first camera), a string of digits meaning the same, or the
                path of a video file.
            output: Path of an annotated copy of the video (`.mp4`, `.m4v`, `.mov`, `.avi` or `.mkv`).
            csv_path: Path of a CSV table with one row per face per processed frame.
            jsonl_path: Path of a JSON Lines file with one object per processed frame.
            every: Process every `every`-th frame (1 processes all of them).
            tracking: Give faces persistent ids and smooth their probabilities.
            time_constant: Smoothing time constant in seconds. 0 keeps ids but turns smoothing off.
            max_frames: Stop after reading this many frames (`None`: to the end, or Ctrl-C for a camera).
            progress: Called after each frame read with the frames read so far and the file's frame count
                (`None` for a camera).
            keep_frames: Put each processed BGR frame in its result.
            scan_every: Scan each `scan_every`-th processed frame whole, and only a region around the
                previous frame's faces in between (see `emodetect.stream`). 1 scans every frame whole.

        Returns:
            A `VideoProcessor`: iterate over it for one `VideoFrameResult` per processed frame, or call its
            `run()` to only write the outputs. Its `stats` counts frames, damaged frames and faces.

        Raises:
            VideoReadError: The source cannot be opened.
            VideoWriteError: The output suffix is not supported, or an output path is the source video,
                another output's path or a folder.

        Examples:
            >>> pipeline = Pipeline()  # doctest: +SKIP
            >>> for frame in pipeline.process_video("clip.mp4", csv_path="faces.csv"):  # doctest: +SKIP
            ...     print(frame.index, frame.result.track_ids, frame.result.labels)
        """
        from emodetect.video import VideoProcessor

        return VideoProcessor(
            self,
            source,
            output=output,
            csv_path=csv_path,
            jsonl_path=jsonl_path,
            every=every,
            tracking=tracking,
            time_constant=time_constant,
            max_frames=max_frames,
            progress=progress,
            keep_frames=keep_frames,
            scan_every=scan_every,
        )

    def stream(
        self,
        tracking: bool = True,
        time_constant: float = DEFAULT_TIME_CONSTANT,
        scan_every: int = DEFAULT_SCAN_EVERY,
    ) -> "StreamProcessor":
        """Return a processor for video frames that the caller reads, one `process(frame, timestamp)` call each.

        It does per frame what `process_video` does: full scans alternating with region scans, tracking and
        smoothing (see `emodetect.stream`).

        Args:
            tracking: Give faces persistent ids and smooth their probabilities.
            time_constant: Smoothing time constant in seconds. 0 keeps ids but turns smoothing off.
            scan_every: Scan each `scan_every`-th frame whole, and only a region around the previous
                frame's faces in between. 1 scans every frame whole.

        Raises:
            ValueError: `scan_every` is below 1.

        Examples:
            >>> stream = Pipeline().stream()  # doctest: +SKIP
            >>> for timestamp, frame in frames:  # doctest: +SKIP
            ...     result = stream.process(frame, timestamp)
        """
        from emodetect.stream import StreamProcessor

        return StreamProcessor(self, tracking=tracking, time_constant=time_constant, scan_every=scan_every)

    def __repr__(self) -> str:
        return f"Pipeline(detector={self.detector!r}, classifier={self.classifier!r})"


def _is_single_input(images: object) -> bool:
    """Return whether `images` is one input (a path, an image array or a non-iterable value), not several."""
    # Iterating a path would yield its characters, and iterating an image array its rows. A 4-D array is a
    # stack of images, and iterating it yields each image.
    if isinstance(images, (str, bytes, os.PathLike)):
        return True
    if isinstance(images, np.ndarray):
        return images.ndim != 4
    return not isinstance(images, Iterable)
