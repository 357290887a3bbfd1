"""Render the documentation's figure and sample output from a public-domain photo.

Usage, from the repository root with the docs extra installed (pip install -e ".[docs]"):

    python scripts/make_docs_figures.py
    python scripts/make_docs_figures.py --classifier path/to/model.keras

The photo is scikit-image's `astronaut` (Eileen Collins, NASA, public domain), which ships inside the
scikit-image wheel, so the script needs no network once the SSD weights are cached. It writes:

- docs/images/astronaut-annotated.jpg: the photo with each face's box and "label score" caption.
- docs/snippets/astronaut-result.json: the pipeline's result for the photo, shown in the user guide.

Rerun it whenever the shipped classifier or the detector changes, and commit both files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
SNIPPETS = ROOT / "docs" / "snippets"
FIGURE = IMAGES / "astronaut-annotated.jpg"
RESULT = SNIPPETS / "astronaut-result.json"
JPEG_QUALITY = 85
MAX_FIGURE_BYTES = 300_000


def load_astronaut():
    """Return scikit-image's astronaut photo as a BGR uint8 array."""
    try:
        from skimage import data
    except ImportError:
        sys.exit('scikit-image is not installed; run: pip install -e ".[docs]"')
    # scikit-image returns RGB, and emodetect takes OpenCV's BGR order.
    return data.astronaut()[..., ::-1].copy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classifier", default="happy-sad", help="classifier name or .keras file (default: happy-sad)")
    arguments = parser.parse_args()

    from emodetect import Pipeline, annotate

    image = load_astronaut()
    # Name the SSD explicitly so that missing weights raise instead of falling back to the Haar cascade.
    pipeline = Pipeline(detector="ssd", classifier=arguments.classifier)
    result = pipeline(image)
    if len(result) == 0:
        sys.exit("The SSD found no face in the astronaut photo; the figure would show nothing.")

    IMAGES.mkdir(parents=True, exist_ok=True)
    SNIPPETS.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".jpg", annotate(image, result), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        sys.exit(f"OpenCV failed to encode {FIGURE.name} as JPEG.")
    if len(encoded) > MAX_FIGURE_BYTES:
        sys.exit(f"{FIGURE.name} would be {len(encoded)} bytes; the docs keep figures under {MAX_FIGURE_BYTES}.")
    FIGURE.write_bytes(encoded.tobytes())

    record = result.to_dict()
    record["source"] = "astronaut.png"
    RESULT.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    labels = ", ".join(f"{label} {score:.2f}" for label, score in zip(result.labels, result.confidences))
    print(f"{FIGURE.relative_to(ROOT)}: {len(encoded)} bytes, {len(result)} face(s): {labels}")
    print(f"{RESULT.relative_to(ROOT)}: detector {pipeline.detector.name}, classifier {arguments.classifier}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
