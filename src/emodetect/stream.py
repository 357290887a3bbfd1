"""Frame-by-frame processing of a video stream: full scans alternating with region scans, tracking, smoothing.

`StreamProcessor.process` takes one frame and its timestamp and returns its faces. It is the per-frame step
of `Pipeline.process_video`, and serves frames that the caller reads from elsewhere (another capture
library, a network stream) through `Pipeline.stream()`.

**Region scans.** Running the detector over the whole frame is the costliest step. Faces move little from
one frame to the next, so between two full scans the detector looks only at a region around the faces of
the previous frame. The region is the smallest rectangle that contains every previous box grown by
`region_margin` of its width and height on each side. The SSD resizes a region by the same factors as a
whole frame (`Detector.detect_region`), so a region costs in proportion to its area. The stream also passes
the smallest previous face's side to the detector, and the SSD scans the region at a lower resolution when
the faces are large enough to stay detectable (`SSDDetector.region_face_side`). When the full rescan after
such a scan finds more faces well inside the region than the region scan did, the next
`FULL_RESOLUTION_PAUSE` region scans keep the full resolution. A full scan runs:

- on the first frame, and on every `scan_every`-th frame after the last full scan, so that a face entering
  the picture is found within `scan_every - 1` frames;
- when the previous frame had no face, or a frame has a different size from the previous one;
- on the same frame again, when a region scan finds fewer faces than the previous frame had, or a face
  that touches or crosses an edge of the region inside the frame. A face leaving the region is thus
  looked for at once.

`scan_every=1` scans every frame whole, which finds a new face at once and costs the most.
"""

from __future__ import annotations

import inspect
import logging
import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from emodetect.results import Detections, PipelineResult
from emodetect.tracking import DEFAULT_TIME_CONSTANT, FaceTracker

if TYPE_CHECKING:
    from emodetect.detectors.base import Detector
    from emodetect.pipeline import Pipeline

logger = logging.getLogger(__name__)

DEFAULT_SCAN_EVERY = 5
"""Default for `scan_every` in video: at 30 frames per second, a face entering the picture is found within
about 0.13 s."""

DEFAULT_REGION_MARGIN = 0.25
"""Default for `region_margin`: a face may move by a quarter of its width or height between two frames
before the frame is rescanned whole."""

FULL_RESOLUTION_PAUSE = 30
"""Region scans that pass no face size to the detector, so that it keeps the full scan's resolution, after a
region scan with a face size missed faces that the full rescan found inside the region. Some faces, such as
a face cut by the frame's edge, are found only at full resolution, and rescanning every frame for them would
cost more than region scans save."""


@dataclass
class ScanCounts:
    """How often each kind of detector pass ran.

    Attributes:
        full: Passes over whole frames, including the rescans.
        region: Passes over a region around the previous frame's faces.
        rescans: Full passes run on a frame whose region scan found fewer faces than the frame before, or a
            face that touches or crosses the region's edge.
    """

    full: int = 0
    region: int = 0
    rescans: int = 0


class StreamProcessor:
    """Detect, classify and track the faces of consecutive frames, one frame per call.

    Args:
        pipeline: The pipeline whose detector and classifier are used.
        tracking: Give faces ids that persist across frames and smooth their probabilities
            (see `emodetect.tracking`). Without it, `track_ids` stay -1 and probabilities are per frame.
        time_constant: EMA time constant in seconds for the smoothing; 0 keeps ids but turns smoothing
            off. Ignored without tracking.
        scan_every: Scan the whole frame at least every `scan_every` frames, and only a region around the
            previous faces in between (see the module docstring). 1 scans every frame whole.
        region_margin: How far a region reaches beyond each previous face, as a fraction of the face's
            width and height on each side.

    Raises:
        ValueError: `scan_every` is below 1 or `region_margin` is negative or not finite.
        TypeError: `scan_every` is not an integer.

    Examples:
        >>> import numpy as np
        >>> from emodetect import Pipeline
        >>> stream = Pipeline(detector="haar").stream()
        >>> len(stream.process(np.zeros((480, 640, 3), np.uint8), timestamp=0.0))
        0
    """

    def __init__(
        self,
        pipeline: "Pipeline",
        tracking: bool = True,
        time_constant: float = DEFAULT_TIME_CONSTANT,
        scan_every: int = DEFAULT_SCAN_EVERY,
        region_margin: float = DEFAULT_REGION_MARGIN,
    ) -> None:
        if isinstance(scan_every, bool) or not isinstance(scan_every, numbers.Integral):
            raise TypeError(f"Expected an integer scan_every, received {scan_every!r}.")
        if scan_every < 1:
            raise ValueError(f"Expected scan_every >= 1 (1 scans every frame whole), received {scan_every}.")
        if not (math.isfinite(region_margin) and region_margin >= 0):
            raise ValueError(
                f"Expected a finite region_margin >= 0 (a fraction of each face's size), received {region_margin}."
            )

        self.pipeline = pipeline
        self.scan_every = int(scan_every)
        self.region_margin = float(region_margin)
        self.tracker: Optional[FaceTracker] = FaceTracker(time_constant=time_constant) if tracking else None
        self.scans = ScanCounts()
        self._previous: Optional[Detections] = None
        self._previous_shape: Optional[tuple[int, ...]] = None
        self._frames_since_full_scan = 0
        self._last_timestamp = -math.inf
        self._full_resolution_scans_left = 0
        self._min_face_support: tuple[Optional["Detector"], bool] = (None, False)

    def process(self, image: np.ndarray, timestamp: float) -> PipelineResult:
        """Detect and classify the faces of the next frame.

        Args:
            image: The frame, a BGR `uint8` array of shape `(H, W, 3)`.
            timestamp: The frame's time in seconds. It must not decrease from call to call, because
                smoothing weighs each frame by the time since the previous one. A frame with the same
                timestamp as the previous one gets no weight, so it leaves the smoothed probabilities as
                they were.

        Returns:
            The frame's faces, with track ids and smoothed probabilities when tracking is on.

        Raises:
            ValueError: The timestamp is not finite or is earlier than the previous frame's. Nothing is
                detected then, and `reset()` starts a new stream.
        """
        if not math.isfinite(timestamp) or timestamp < self._last_timestamp:
            raise ValueError(
                f"Expected a finite timestamp of at least {self._last_timestamp} s, the previous frame's, received "
                f"{timestamp}. Call reset() before starting another video."
            )
        self._last_timestamp = float(timestamp)

        detections = self._detect(image)
        result = self.pipeline.classify([image], [detections])[0]
        if self.tracker is not None:
            result = self.tracker.update(result, timestamp)
        return result

    def reset(self) -> None:
        """Start a new stream: forget the previous frame, the tracks and the last timestamp.

        Track ids continue from where they were, so no id is given twice. The scan counts keep counting.
        """
        self._previous = None
        self._previous_shape = None
        self._frames_since_full_scan = 0
        self._last_timestamp = -math.inf
        self._full_resolution_scans_left = 0
        if self.tracker is not None:
            self.tracker.reset()

    def region(self, boxes: np.ndarray, image_shape: tuple[int, ...]) -> tuple[float, float, float, float]:
        """Return the region scanned around `boxes`: their grown union, clipped to the image."""
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        height, width = image_shape[:2]
        return (
            max(0.0, float(np.min(boxes[:, 0] - self.region_margin * widths))),
            max(0.0, float(np.min(boxes[:, 1] - self.region_margin * heights))),
            min(float(width), float(np.max(boxes[:, 2] + self.region_margin * widths))),
            min(float(height), float(np.max(boxes[:, 3] + self.region_margin * heights))),
        )

    def _detect(self, image: np.ndarray) -> Detections:
        detector = self.pipeline.detector
        previous = self._previous
        full_scan_due = (
            previous is None
            or len(previous) == 0
            or image.shape != self._previous_shape
            or self._frames_since_full_scan + 1 >= self.scan_every
        )

        if full_scan_due:
            found = self._full_scan(image)
        else:
            assert previous is not None  # full_scan_due covers a missing previous frame.
            region = self.region(previous.boxes, image.shape)
            self.scans.region += 1
            self._frames_since_full_scan += 1
            sized = self._full_resolution_scans_left == 0 and self._takes_min_face(detector)
            if sized:
                boxes = previous.boxes
                smallest = float(min(np.min(boxes[:, 2] - boxes[:, 0]), np.min(boxes[:, 3] - boxes[:, 1])))
                found = detector.detect_region(image, region, min_face=smallest)
            else:
                self._full_resolution_scans_left = max(0, self._full_resolution_scans_left - 1)
                found = detector.detect_region(image, region)
            found = _clipped(found, image.shape)

            at_edge = _at_region_edge(found.boxes, region, image.shape)
            if len(found) < len(previous) or at_edge.any():
                logger.debug("Region scan found %d of %d faces; scanning the whole frame", len(found), len(previous))
                self.scans.rescans += 1
                whole = self._full_scan(image)
                # More faces well inside the region in the full scan than in the region scan means the region
                # scan at a lower resolution missed or misplaced them, rather than that a face moved away.
                inside = np.count_nonzero(~_at_region_edge(whole.boxes, region, image.shape))
                if sized and inside > np.count_nonzero(~at_edge):
                    logger.debug("Region scans keep the full resolution for the next %d scans", FULL_RESOLUTION_PAUSE)
                    self._full_resolution_scans_left = FULL_RESOLUTION_PAUSE
                found = whole

        self._previous = found
        self._previous_shape = image.shape
        return found

    def _takes_min_face(self, detector: "Detector") -> bool:
        """Return whether the detector's `detect_region` accepts `min_face`; plugins written before it may not."""
        known, accepts = self._min_face_support
        if known is not detector:
            try:
                parameters = inspect.signature(detector.detect_region).parameters.values()
            except (TypeError, ValueError):
                parameters = []
            accepts = any(
                parameter.name == "min_face" or parameter.kind is inspect.Parameter.VAR_KEYWORD
                for parameter in parameters
            )
            self._min_face_support = (detector, accepts)
        return accepts

    def _full_scan(self, image: np.ndarray) -> Detections:
        self.scans.full += 1
        self._frames_since_full_scan = 0
        return _clipped(self.pipeline.detector.detect(image), image.shape)


def _clipped(found: Detections, image_shape: tuple[int, ...]) -> Detections:
    # A plugin detector's boxes may leave the image or have no area, which would break the next region.
    return Detections.from_boxes(found.boxes, found.scores, image_shape)


def _at_region_edge(
    boxes: np.ndarray, region: tuple[float, float, float, float], image_shape: tuple[int, ...]
) -> np.ndarray:
    """Return a mask of the boxes that touch, cross or lie beyond an edge of the region inside the image.

    Such a face may be cut by the region, so its box cannot be trusted. A detector given only the region's
    pixels (the default `Detector.detect_region`) returns a cut face's box ending at the edge. The SSD runs
    on a wider crop and returns a box that crosses the edge. The other boxes lie well inside the region.
    """
    height, width = image_shape[:2]
    left, top, right, bottom = region
    # A box within one pixel of an edge counts as touching it, because boxes are not whole pixels.
    at_left = (boxes[:, 0] <= left + 1) & (left > 0)
    at_top = (boxes[:, 1] <= top + 1) & (top > 0)
    at_right = (boxes[:, 2] >= right - 1) & (right < width)
    at_bottom = (boxes[:, 3] >= bottom - 1) & (bottom < height)
    return at_left | at_top | at_right | at_bottom
