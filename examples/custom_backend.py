"""Add a face detector to emodetect: OpenCV's Haar cascade for faces seen from the side.

The built-in `haar` detector looks for frontal faces only. This backend runs OpenCV's profile-face cascade,
which ships with opencv-python, so it needs no download. The cascade finds faces turned towards one
side, so it also runs on the mirrored image. Overlapping boxes are merged with non-maximum suppression.

Run it as it is:

    python examples/custom_backend.py [PHOTO] [--output annotated.jpg]

In a script like this one, the `DETECTORS.register` decorator makes the name "haar-profile" known. A
package registers the class through an entry point instead, so that emodetect finds it without an import:

    # pyproject.toml of a package whose module my_detectors/profile.py defines this class
    [project.entry-points."emodetect.detectors"]
    haar-profile = "my_detectors.profile:ProfileHaarDetector"

After `pip install` of that package, `Pipeline(detector="haar-profile")`, `emodetect detect --detector
haar-profile` and `emodetect models` find it. Use either the decorator or the entry point for one name,
not both: if the module is imported before emodetect reads the entry points, the entry point is ignored
with a warning.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import cv2
import numpy as np

from emodetect import Pipeline, annotate, load_image
from emodetect.detectors import DETECTORS, Detector
from emodetect.errors import WeightsError
from emodetect.results import Detections

# The default photo, a man with his face turned aside, is in the shared data folder beside the repository.
PAPER_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "paper-happy-sad"
DEFAULT_PHOTO = PAPER_PHOTOS / "sad" / "maxresdefault3.jpg"


# --8<-- [start:detector]
@DETECTORS.register("haar-profile", "OpenCV's Haar cascade for faces seen from the side; needs no download.")
class ProfileHaarDetector(Detector):
    """Faces in profile, found by OpenCV's `haarcascade_profileface.xml` on the image and its mirror.

    Like the frontal cascade, it also reports some false faces. Raise `min_neighbors` to get fewer.

    Args:
        min_neighbors: Overlapping hits a box needs. A higher value gives fewer false faces.
        overlap_threshold: Boxes that overlap a higher-scoring box by more than this IoU are dropped.
        confidence_threshold: Minimum score `n / (n + min_neighbors)` of a box with `n` hits, in [0, 1].
    """

    name = "haar-profile"

    def __init__(self, min_neighbors: int = 4, overlap_threshold: float = 0.3, confidence_threshold: float = 0.5):
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ValueError(f"Expected confidence_threshold in [0, 1], received {confidence_threshold}.")
        path = Path(cv2.data.haarcascades) / "haarcascade_profileface.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        # A cascade keeps the state of a search in the object, so threads that share the detector take turns.
        self._lock = threading.Lock()
        if self._cascade.empty():
            # WeightsError is emodetect's error for a model file that cannot be loaded, so the CLI reports it.
            raise WeightsError(f"OpenCV's cascade '{path}' is missing or unreadable. Reinstall opencv-python.")
        self.min_neighbors = min_neighbors
        self.overlap_threshold = overlap_threshold
        self.confidence_threshold = confidence_threshold

    def _search(self, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # detectMultiScale2 returns (x, y, width, height) boxes and each box's number of overlapping hits.
        with self._lock:
            found, hits = self._cascade.detectMultiScale2(grey, scaleFactor=1.1, minNeighbors=self.min_neighbors)
        return np.asarray(found, np.float32).reshape(-1, 4), np.asarray(hits, np.float32).reshape(-1)

    def detect(self, image: np.ndarray) -> Detections:
        """Find faces in profile in a BGR uint8 image of shape (H, W, 3)."""
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        boxes, hits = self._search(grey)
        mirrored_boxes, mirrored_hits = self._search(cv2.flip(grey, 1))
        # Map boxes found on the mirrored image back: x becomes width - x - box width.
        mirrored_boxes[:, 0] = grey.shape[1] - mirrored_boxes[:, 0] - mirrored_boxes[:, 2]
        boxes = np.concatenate([boxes, mirrored_boxes])
        scores = np.concatenate([hits, mirrored_hits])
        scores = scores / (scores + self.min_neighbors)

        keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), self.confidence_threshold, self.overlap_threshold)
        keep = np.asarray(keep, dtype=np.int64).reshape(-1)
        keep = keep[np.argsort(-scores[keep], kind="stable")]  # the Detector contract: highest score first
        x, y, width, height = boxes[keep].T
        return Detections.from_boxes(np.stack([x, y, x + width, y + height], axis=1), scores[keep], image.shape)
# --8<-- [end:detector]


def main() -> int:
    parser = argparse.ArgumentParser(description="Detect faces in profile with a plugin detector and classify them.")
    parser.add_argument("photo", nargs="?", type=Path, default=DEFAULT_PHOTO, help="photo to process")
    parser.add_argument("--output", type=Path, help="write the annotated photo to this file")
    arguments = parser.parse_args()
    if not arguments.photo.is_file():
        sys.exit(f"Photo not found: '{arguments.photo}'. Pass a photo: python examples/custom_backend.py PHOTO")

    # The pipeline builds the detector by its registered name, like a built-in one.
    pipeline = Pipeline(detector="haar-profile")
    image = load_image(arguments.photo)
    result = pipeline(image)

    print(f"{arguments.photo.name}: {len(result)} face(s) in profile")
    for box, label, confidence in zip(result.boxes, result.labels, result.confidences):
        print(f"  {label} {confidence:.2f} at {[round(float(value)) for value in box]}")
    if arguments.output:
        cv2.imwrite(str(arguments.output), annotate(image, result))
        print(f"Wrote {arguments.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
