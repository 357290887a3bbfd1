"""Find the faces in a photo, classify each one's expression, and save a copy with boxes and labels.

    python examples/annotate_photo.py [PHOTO] [--output FILE] [--detector NAME] [--classifier NAME]

Without PHOTO it uses a photo of three smiling women from the shared data folder beside the repository.
The annotated copy goes to PHOTO's name with an "-annotated" suffix in the current folder, unless
--output names another file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

from emodetect import Pipeline, annotate, load_image

PAPER_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "paper-happy-sad"
DEFAULT_PHOTO = PAPER_PHOTOS / "happy" / "1-2.jpg"


def main() -> int:
    parser = argparse.ArgumentParser(description="Annotate the faces of one photo with their expressions.")
    parser.add_argument("photo", nargs="?", type=Path, default=DEFAULT_PHOTO, help="photo to annotate")
    parser.add_argument("--output", type=Path, help="annotated copy (default: PHOTO-annotated.jpg in this folder)")
    parser.add_argument("--detector", help="detector name (default: ssd, or haar when the SSD weights are missing)")
    parser.add_argument("--classifier", default="happy-sad", help="classifier name or .keras file")
    arguments = parser.parse_args()

    if not arguments.photo.is_file():
        sys.exit(f"Photo not found: '{arguments.photo}'. Pass one: python examples/annotate_photo.py PHOTO")
    output = arguments.output or Path(f"{arguments.photo.stem}-annotated.jpg")

    # Build the pipeline once, because building it loads the detector's and the classifier's weights.
    pipeline = Pipeline(detector=arguments.detector, classifier=arguments.classifier)

    # load_image returns the BGR uint8 array that the pipeline and annotate() take.
    image = load_image(arguments.photo)
    result = pipeline(image)

    for box, label, confidence in zip(result.boxes, result.labels, result.confidences):
        x1, y1, x2, y2 = (round(float(value)) for value in box)
        print(f"{label:>10} {confidence:.2f}  box ({x1}, {y1}, {x2}, {y2})")

    if not cv2.imwrite(str(output), annotate(image, result)):
        sys.exit(f"Cannot write '{output}': check that its folder exists and that the suffix is an image format.")
    print(f"{len(result)} face(s) found by the {pipeline.detector.name} detector; wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
