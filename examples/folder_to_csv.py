"""Classify every face in a folder of photos and write one CSV row per face.

    python examples/folder_to_csv.py [FOLDER] [--output faces.csv] [--detector NAME] [--classifier NAME]

FOLDER is searched recursively for image files. Without it, the script uses the folder of happy photos in
the shared data folder beside the repository. Each row contains the file, the face's box in pixels, the
detector's score, the label and one probability column per class. Files that cannot be read are listed
at the end and make the script exit with status 1.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from emodetect import Pipeline
from emodetect.images import IMAGE_SUFFIXES

DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "paper-happy-sad" / "happy"


def main() -> int:
    parser = argparse.ArgumentParser(description="Write the faces of a folder of photos to a CSV file.")
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER, help="folder of photos")
    parser.add_argument("--output", type=Path, default=Path("faces.csv"), help="CSV file (default: faces.csv)")
    parser.add_argument("--detector", help="detector name (default: ssd, or haar when the SSD weights are missing)")
    parser.add_argument("--classifier", default="happy-sad", help="classifier name or .keras file")
    arguments = parser.parse_args()

    if not arguments.folder.is_dir():
        sys.exit(f"Folder not found: '{arguments.folder}'. Pass one: python examples/folder_to_csv.py FOLDER")
    candidates = sorted(arguments.folder.rglob("*"))
    files = [path for path in candidates if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        sys.exit(f"No image files in '{arguments.folder}' (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")

    pipeline = Pipeline(detector=arguments.detector, classifier=arguments.classifier)
    header = ["file", "face", "x1", "y1", "x2", "y2", "detection_score", "label", "score"]
    header += [f"p_{name}" for name in pipeline.class_names]

    faces = 0
    unreadable = []
    with open(arguments.output, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        # run() reads the files lazily in batches and yields an outcome with an error for an unreadable file.
        for outcome in pipeline.run(files, skip_errors=True):
            if outcome.result is None:
                unreadable.append(outcome.source)
                continue
            result = outcome.result
            relative = Path(outcome.source).relative_to(arguments.folder)
            for index in range(len(result)):
                box = [round(float(value), 1) for value in result.boxes[index]]
                probabilities = [round(float(value), 4) for value in result.probabilities[index]]
                score = round(float(result.scores[index]), 4)
                confidence = round(float(result.confidences[index]), 4)
                writer.writerow([relative, index, *box, score, result.labels[index], confidence, *probabilities])
            faces += len(result)

    print(f"{len(files) - len(unreadable)} of {len(files)} images read, {faces} faces written to {arguments.output}")
    if unreadable:
        print(f"Unreadable files: {', '.join(unreadable)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
