"""Detectors built on OpenCV: the ResNet-10 SSD (default) and the bundled Haar cascade."""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from emodetect import weights
from emodetect.detectors.base import DETECTORS, Detector, clip_region
from emodetect.errors import WeightsError
from emodetect.images import to_bgr
from emodetect.results import Detections

logger = logging.getLogger(__name__)

SSD_FILES = ("opencv_face_detector_uint8.pb", "opencv_face_detector.pbtxt")
SSD_INPUT_SIZE = (300, 300)
# Per-channel BGR means subtracted by the network's training pipeline (from OpenCV's face detector sample).
SSD_MEAN_BGR = (104.0, 177.0, 123.0)
MIN_REGION_INPUT = 64
"""Smallest side in pixels of the network input in `SSDDetector.detect_region`. With OpenCV 4.14, inputs of
40x40 pixels or less found no face even in a tight crop of a large face, so smaller regions are enlarged."""

REGION_INPUT_STEP = 64
"""Network input sides in `SSDDetector.detect_region` differ from `input_size` by a multiple of this. The
network's stride-2 layers pad odd-sized maps on one side. An input side of another size therefore shifts the
grid of its first feature maps against the prior boxes, which moved the boxes of faces in a 640x480 frame
by about 8 pixels. Sides that differ by a multiple of 64 give the first feature maps the same parity as the
full input. The boxes then stayed within about 1 pixel on average of a full scan's (mean IoU 0.98 on 40
frames of real photos)."""


REGION_FACE_SIDE = 40.0
"""Default smallest face side, in network input pixels, that `SSDDetector.detect_region` keeps when it scans
a region at a lower resolution than a full scan. The SSD's smallest prior boxes are 30 pixels, so a 40-pixel
face is inside the range its prior boxes cover, with room for a face that shrinks between two frames."""

MIN_REGION_SCALE = 0.5
"""Lowest factor by which a region scan shrinks the full scan's resolution, however large the faces are."""

MAX_REGION_NETS = 3
"""Networks kept by one `SSDDetector` for region scans, one per network input size, besides its main one."""


def _aligned_side(needed: float, full_side: int) -> int:
    """Return the smallest side of at least `needed` and `MIN_REGION_INPUT` pixels that differs from
    `full_side` by a multiple of `REGION_INPUT_STEP`."""
    # The tolerance keeps a side computed as exactly an aligned size, give or take rounding, at that size.
    needed_side = max(MIN_REGION_INPUT, int(np.ceil(needed - 1e-6)))
    return needed_side + (full_side - needed_side) % REGION_INPUT_STEP


def _check_threshold(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"Expected confidence_threshold in [0, 1], received {value}.")
    return float(value)


@DETECTORS.register("ssd", "OpenCV's ResNet-10 SSD face detector (downloads 2.7 MB of weights once).")
class SSDDetector(Detector):
    """OpenCV DNN running the ResNet-10 SSD face detector ("res10_300x300", TensorFlow variant).

    The whole image is resized to the network's 300x300 input, so faces smaller than about 1/15 of the
    image's longer side are often missed in large group photos.

    Args:
        confidence_threshold: Minimum detector confidence to keep a face, in [0, 1].
        model_path: The `.pb` weights; by default fetched into the cache (see `emodetect.weights`).
        config_path: The `.pbtxt` graph description; by default fetched like the weights.
        input_size: `(width, height)` in pixels that the image is resized to for the network, which was
            trained at 300x300. The time per image grows with the pixel count, so a smaller size runs
            faster but misses smaller faces.
        region_face_side: Smallest face side, in network input pixels, that `detect_region` keeps when it
            is given the size of the faces to expect. A region whose faces would be larger than this at the
            full scan's scale is scanned at a lower resolution, at no less than `MIN_REGION_SCALE` times the
            full scan's. Faces with fewer image pixels than this are never shrunk. None keeps the full
            scan's scale.

    Raises:
        WeightsError: The weights are not cached and cannot be downloaded.
        ValueError: The threshold is outside [0, 1], `input_size` is not two positive sides, or
            `region_face_side` is not a positive number.
    """

    name = "ssd"

    def __init__(
        self,
        confidence_threshold: float = 0.5,
        model_path: Optional[str] = None,
        config_path: Optional[str] = None,
        input_size: tuple[int, int] = SSD_INPUT_SIZE,
        region_face_side: Optional[float] = REGION_FACE_SIDE,
    ) -> None:
        self.confidence_threshold = _check_threshold(confidence_threshold)
        if len(input_size) != 2 or min(int(side) for side in input_size) < 1:
            raise ValueError(f"Expected input_size (width, height) with positive sides, received {input_size}.")
        if region_face_side is not None and not (math.isfinite(region_face_side) and region_face_side > 0):
            raise ValueError(f"Expected region_face_side > 0 or None, received {region_face_side}.")
        self.region_face_side = None if region_face_side is None else float(region_face_side)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        if model_path and config_path:
            model_file, config_file = Path(model_path), Path(config_path)
        else:
            fetched = weights.fetch_all(SSD_FILES)
            model_file = Path(model_path) if model_path else fetched[SSD_FILES[0]]
            config_file = Path(config_path) if config_path else fetched[SSD_FILES[1]]
        try:
            # The files are kept in memory because region scans build more networks later (see _region_net).
            self._model_data = np.fromfile(model_file, dtype=np.uint8)
            self._config_data = np.fromfile(config_file, dtype=np.uint8)
            self._net = cv2.dnn.readNetFromTensorflow(self._model_data, self._config_data)
        except (cv2.error, OSError) as error:
            advice = (
                "Check the model_path and config_path files."
                if model_path or config_path
                else "Delete them and run 'emodetect download' again."
            )
            reason = error.err if isinstance(error, cv2.error) else error.strerror
            raise WeightsError(
                f"OpenCV cannot load the SSD from '{model_file}' and '{config_file}': {reason or error}. {advice}"
            ) from None
        self._region_nets: OrderedDict[tuple[int, int], cv2.dnn.Net] = OrderedDict()
        # An OpenCV network keeps its input between setInput and forward, and region scans reorder the
        # cache of networks, so one thread at a time runs a scan.
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> Detections:
        """Find faces in a BGR `uint8` image; see `Detector.detect`."""
        image = to_bgr(image)  # Returns a BGR uint8 image unchanged, and converts grey or BGRA input.
        with self._lock:
            return self._run(self._net, image, self.input_size)

    def detect_region(
        self, image: np.ndarray, region: Sequence[float], min_face: Optional[float] = None
    ) -> Detections:
        """Find faces inside a region of a BGR `uint8` image; see `Detector.detect_region`.

        The region is resized by the factors that `detect` applies to the whole image, so faces reach the
        network at the same size in pixels and the cost falls with the region's area. When `min_face` is
        given, the factors shrink until a face of that side would span `region_face_side` input pixels
        (never below `MIN_REGION_SCALE` times the full scan's, and not at all for a face with fewer image
        pixels than `region_face_side`). A crop that would then leave the image raises the factors until
        it fits, so that both axes keep the full scan's proportions. Each side of the network input is rounded
        up to `input_size` plus a multiple of `REGION_INPUT_STEP` pixels (at least `MIN_REGION_INPUT`),
        and the region is widened about its centre to match. A region that would need the full input size
        is scanned as a whole image.

        NOTE: boxes from a scan at a lower resolution differ a little more from a full scan's. On the
        speed benchmark's video frames, the mean IoU between the video path's boxes and full-scan boxes
        was 0.94 with one face and 0.95 with three. An earlier run, in which region scans kept the full
        scan's resolution, measured 0.96 and 0.997.
        """
        image = to_bgr(image)
        with self._lock:
            return self._scan_region(image, region, min_face)

    def _scan_region(self, image: np.ndarray, region: Sequence[float], min_face: Optional[float]) -> Detections:
        x1, y1, x2, y2 = clip_region(region, image.shape)
        height, width = image.shape[:2]
        full_scale_x = self.input_size[0] / width
        full_scale_y = self.input_size[1] / height
        shrink = self._region_shrink(min_face, min(full_scale_x, full_scale_y))

        # At shrink 1 the crop always fits in the image. At a lower resolution, a crop side that would leave
        # the image raises the shrink until that side fits, so both axes keep the full scan's proportions
        # instead of one axis being squeezed. The shrink only rises, so the loop ends at 1 at the latest.
        while True:
            scale_x, scale_y = full_scale_x * shrink, full_scale_y * shrink
            input_width = _aligned_side((x2 - x1) * scale_x, self.input_size[0])
            input_height = _aligned_side((y2 - y1) * scale_y, self.input_size[1])
            if input_width >= self.input_size[0] and input_height >= self.input_size[1]:
                return self._run(self._net, image, self.input_size)
            input_width = min(input_width, self.input_size[0])
            input_height = min(input_height, self.input_size[1])
            # A cached network whose input covers this one costs a little more per scan than a new network
            # of the exact size, but building a network takes about 25 ms.
            input_width, input_height = self._covering_size((input_width, input_height))
            overflow = max(input_width / (width * scale_x), input_height / (height * scale_y))
            if overflow <= 1.0 or shrink >= 1.0:
                break
            shrink = min(1.0, shrink * overflow)

        # Widen the region about its centre to the input's size at the region's scale, shifted back
        # inside the image where it would stick out.
        crop_width = min(width, round(input_width / scale_x))
        crop_height = min(height, round(input_height / scale_y))
        left = min(max(0, round((x1 + x2 - crop_width) / 2)), width - crop_width)
        top = min(max(0, round((y1 + y2 - crop_height) / 2)), height - crop_height)

        region_input = (input_width, input_height)
        crop = image[top : top + crop_height, left : left + crop_width]
        found = self._run(self._region_net(region_input), crop, region_input)
        return Detections.from_boxes(found.boxes + np.array([left, top, left, top], np.float32), found.scores, image.shape)

    def _region_shrink(self, min_face: Optional[float], scale: float) -> float:
        """Return the factor, in [MIN_REGION_SCALE, 1], applied to the full scan's scale for a region scan."""
        if min_face is None or self.region_face_side is None or not math.isfinite(min_face):
            return 1.0
        # A face with fewer image pixels than region_face_side could only be shrunk here when the full scan
        # enlarges it. Such a face has little detail to spare, so it keeps the full scan's scale.
        if min_face < self.region_face_side:
            return 1.0
        return min(1.0, max(MIN_REGION_SCALE, self.region_face_side / (min_face * scale)))

    def _covering_size(self, needed: tuple[int, int]) -> tuple[int, int]:
        covering = [size for size in self._region_nets if size[0] >= needed[0] and size[1] >= needed[1]]
        if needed in self._region_nets or not covering:
            return needed
        return min(covering, key=lambda size: size[0] * size[1])

    def _region_net(self, input_size: tuple[int, int]) -> "cv2.dnn.Net":
        # OpenCV reallocates a network's buffers whenever its input shape changes, which added about 10 ms
        # to a full scan after a region scan. So each region input size gets its own network, and the
        # least recently used one is dropped beyond MAX_REGION_NETS (each takes about 30 MB).
        net = self._region_nets.pop(input_size, None)
        if net is None:
            net = cv2.dnn.readNetFromTensorflow(self._model_data, self._config_data)
            if len(self._region_nets) >= MAX_REGION_NETS:
                self._region_nets.popitem(last=False)
        self._region_nets[input_size] = net
        return net

    def _run(self, net: "cv2.dnn.Net", image: np.ndarray, input_size: tuple[int, int]) -> Detections:
        # blobFromImage resizes to input_size and subtracts the mean; the network expects BGR, so no channel swap.
        # The graph's DetectionOutput layer rejects batches of several images in OpenCV 4.14, so images go
        # through one at a time.
        blob = cv2.dnn.blobFromImage(image, 1.0, input_size, SSD_MEAN_BGR, swapRB=False, crop=False)
        net.setInput(blob)
        output = net.forward()  # shape (1, 1, N, 7): image index, class, confidence, x1, y1, x2, y2

        rows = output.reshape(-1, 7)
        rows = rows[rows[:, 2] >= self.confidence_threshold]
        rows = rows[np.argsort(-rows[:, 2], kind="stable")]
        height, width = image.shape[:2]
        boxes = rows[:, 3:7] * np.array([width, height, width, height], dtype=np.float32)
        return Detections.from_boxes(boxes, rows[:, 2], image.shape)

    def __repr__(self) -> str:
        size = "" if self.input_size == SSD_INPUT_SIZE else f", input_size={self.input_size}"
        face_side = "" if self.region_face_side == REGION_FACE_SIDE else f", region_face_side={self.region_face_side}"
        return f"SSDDetector(confidence_threshold={self.confidence_threshold}{size}{face_side})"


@DETECTORS.register("haar", "OpenCV's bundled Haar cascade for frontal faces; needs no download.")
class HaarDetector(Detector):
    """OpenCV's Viola-Jones cascade for frontal faces (`haarcascade_frontalface_default.xml`).

    It misses turned and tilted faces and finds more false faces than the SSD. Its scores are not
    probabilities: each is the cascade's neighbour count `n` mapped to `n / (n + min_neighbors)`, so a
    box with more overlapping hits scores higher. `confidence_threshold` filters on that value.

    Args:
        confidence_threshold: Minimum score to keep a face, in [0, 1]; 0.5 keeps every box the cascade
            accepts with its `min_neighbors`.
        min_neighbors: Overlapping hits a box needs; higher means fewer false faces.
        scale_factor: Image pyramid step of the cascade.
        max_side: Larger images are shrunk to this longer side before the search, for speed; boxes are
            mapped back to the original image.

    Raises:
        ValueError: A parameter is outside its range.
    """

    name = "haar"

    def __init__(
        self,
        confidence_threshold: float = 0.5,
        min_neighbors: int = 5,
        scale_factor: float = 1.1,
        max_side: int = 800,
    ) -> None:
        if min_neighbors < 1 or scale_factor <= 1.0 or max_side < 32:
            raise ValueError(
                f"Expected min_neighbors >= 1, scale_factor > 1 and max_side >= 32, received "
                f"min_neighbors={min_neighbors}, scale_factor={scale_factor}, max_side={max_side}."
            )
        self.confidence_threshold = _check_threshold(confidence_threshold)
        self.min_neighbors = int(min_neighbors)
        self.scale_factor = float(scale_factor)
        self.max_side = int(max_side)
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise WeightsError(f"OpenCV's Haar cascade '{path}' is missing or unreadable; reinstall opencv-python.")
        # The cascade stores the state of a search in the object: in OpenCV 4.14, two searches at once failed
        # an assertion. So one thread at a time searches.
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> Detections:
        """Find faces in a BGR `uint8` image; see `Detector.detect`."""
        image = to_bgr(image)
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        height, width = grey.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        scale_x = scale_y = scale
        if scale < 1.0:
            if min(height, width) * scale >= 1.0:
                grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            else:
                # In a very long, thin image the short side would shrink to no pixel, which cv2.resize
                # rejects, so that side keeps one pixel.
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
                scale_x, scale_y = size[0] / width, size[1] / height
        grey = cv2.equalizeHist(grey)

        with self._lock:
            found, neighbours = self._cascade.detectMultiScale2(
                grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(20, 20)
            )
        if len(found) == 0:
            return Detections.empty()

        found = np.asarray(found, dtype=np.float32) / np.array([scale_x, scale_y, scale_x, scale_y], dtype=np.float32)
        boxes = np.column_stack([found[:, 0], found[:, 1], found[:, 0] + found[:, 2], found[:, 1] + found[:, 3]])
        counts = np.asarray(neighbours, dtype=np.float32).reshape(-1)
        scores = counts / (counts + self.min_neighbors)
        keep = scores >= self.confidence_threshold
        order = np.argsort(-scores[keep], kind="stable")
        return Detections.from_boxes(boxes[keep][order], scores[keep][order], image.shape)

    def __repr__(self) -> str:
        return f"HaarDetector(confidence_threshold={self.confidence_threshold}, min_neighbors={self.min_neighbors})"
