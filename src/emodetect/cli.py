"""The `emodetect` command line.

Every sub-command imports its heavy modules inside its handler, so `emodetect --help` starts fast.
Exit codes: 0 success, 1 some inputs failed or a check failed, 2 invalid usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

logger = logging.getLogger("emodetect.cli")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C, as shells report a process ended by SIGINT (128 + 2)."""


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the `emodetect` command."""
    parser = argparse.ArgumentParser(
        prog="emodetect",
        description="Find faces in images and classify their expressions.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log errors only")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    detect = commands.add_parser(
        "detect",
        help="detect and classify faces in images",
        description="Detect faces in images, classify each face, write annotated images and JSON.",
    )
    detect.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files or folders of images")
    detect.add_argument("--output", "-o", type=Path, help="folder for annotated copies of the images")
    detect.add_argument("--json", type=Path, dest="json_file", help="file for the results as JSON ('-' for stdout)")
    detect.add_argument(
        "--detector",
        help="detector name (default: ssd, falling back to haar when the SSD weights cannot be had)",
    )
    detect.add_argument("--classifier", default="happy-sad", help="classifier name or .keras model file (default: happy-sad)")
    detect.add_argument("--threshold", type=float, help="minimum detector confidence in [0, 1] (default: 0.5)")
    detect.set_defaults(handler=run_detect)

    models = commands.add_parser("models", help="list detectors, classifiers and weights with their cache status")
    models.set_defaults(handler=run_models)

    download = commands.add_parser(
        "download",
        help="fetch every weights file into the cache, or import them from a folder",
        description=(
            "Fetch every weights file into the cache (EMODETECT_HOME or the user cache folder). With --from, "
            "copy them from a local folder instead, checking each SHA256: the way to fill the cache of a "
            "machine without network."
        ),
    )
    download.add_argument("--from", dest="source", type=Path, metavar="DIR", help="folder holding the weights files")
    download.set_defaults(handler=run_download)

    # Each module adds its own sub-commands; neither imports TensorFlow or OpenCV at import time.
    from emodetect import cli_training, cli_video

    cli_training.add_commands(commands)
    cli_video.add_commands(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with `argv` (default: `sys.argv[1:]`) and return the exit code."""
    parser = build_parser()
    arguments = parser.parse_args(argv)

    if arguments.version:
        from emodetect import __version__

        print(f"emodetect {__version__}")
        return EXIT_OK
    if arguments.command is None:
        parser.print_help()
        return EXIT_USAGE

    level = logging.ERROR if arguments.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(arguments.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")

    from emodetect.errors import EmodetectError, UnknownBackendError

    try:
        return int(arguments.handler(arguments))
    except UnknownBackendError as error:
        print(f"emodetect: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except EmodetectError as error:
        print(f"emodetect: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except ValueError as error:
        print(f"emodetect: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        # Writing an output file can fail on permissions, a full disk or a folder given as a file name.
        print(f"emodetect: error: {error}", file=sys.stderr)
        return EXIT_FAILED


def _check_json_target(target: Path, inputs: Sequence[Path], output: Optional[Path]) -> None:
    """Raise `ValueError` before any work when the JSON file could not be written or would replace an input."""
    from emodetect.images import resolve_path

    resolved = resolve_path(target)
    if target.is_dir() or (output is not None and resolved == resolve_path(output)):
        raise ValueError(f"--json must name a file, received the folder '{target}'. Add a file name, such as {target / 'faces.json'}.")
    blocking = next((parent for parent in target.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise ValueError(f"--json '{target}' cannot be written, because '{blocking}' is a file, not a folder.")
    for path in inputs:
        if resolve_path(path) == resolved:
            raise ValueError(f"--json '{target}' is one of the input images and would be overwritten. Choose another file name.")


def _expand_inputs(paths: Sequence[Path], exclude: Optional[Path] = None) -> list[Path]:
    """List the image files of the given files and folders.

    Files inside `exclude` (the output folder) are left out when it is nested in an input folder, so a second
    run does not annotate the annotated copies. An output folder that is itself an input folder is kept.
    """
    from emodetect.images import IMAGE_SUFFIXES, resolve_path

    excluded = resolve_path(exclude) if exclude is not None else None
    expanded: list[Path] = []
    for path in paths:
        if path.is_dir():
            skip = excluded if excluded is not None and excluded != resolve_path(path) else None
            # A broken link with an image suffix is kept, so that it is reported as unreadable instead of
            # vanishing from the run without a word.
            found = sorted(
                child
                for child in path.rglob("*")
                if (child.is_file() or (child.is_symlink() and not child.exists()))
                and child.suffix.lower() in IMAGE_SUFFIXES
                and (skip is None or skip not in resolve_path(child).parents)
            )
            if not found:
                logger.warning("No image files found in folder %s", path)
            expanded.extend(found)
        else:
            expanded.append(path)
    return expanded


def _annotated_name(source: Path, used: set[str]) -> str:
    name = f"{source.stem}.jpg" if source.suffix.lower() not in (".png", ".jpg", ".jpeg") else source.name
    candidate, counter = name, 1
    while candidate in used:
        candidate = f"{Path(name).stem}_{counter}{Path(name).suffix}"
        counter += 1
    used.add(candidate)
    return candidate


def run_detect(arguments: argparse.Namespace) -> int:
    """Handle `emodetect detect`."""
    import cv2

    from emodetect.drawing import annotate
    from emodetect.images import resolve_path
    from emodetect.pipeline import Pipeline

    if arguments.threshold is not None and not 0.0 <= arguments.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], received {arguments.threshold}.")

    inputs = _expand_inputs(arguments.images, exclude=arguments.output)
    json_to_stdout = str(arguments.json_file) == "-"
    if arguments.json_file and not json_to_stdout:
        _check_json_target(arguments.json_file, inputs, arguments.output)
    # With the JSON on stdout, the per-image lines go to stderr so stdout stays parseable.
    report = sys.stderr if json_to_stdout else sys.stdout
    pipeline = Pipeline(detector=arguments.detector, classifier=arguments.classifier, confidence_threshold=arguments.threshold)
    if arguments.output:
        arguments.output.mkdir(parents=True, exist_ok=True)

    records: list[dict[str, Any]] = []
    failed: list[str] = []
    # Names of inputs that sit in the output folder are taken, so an annotated copy never overwrites its input.
    output_folder = resolve_path(arguments.output) if arguments.output else None
    used_names = {path.name for path in inputs if output_folder is not None and resolve_path(path).parent == output_folder}
    show_progress = len(inputs) > 20 and sys.stderr.isatty()
    interrupted = False
    try:
        for position, outcome in enumerate(pipeline.run(inputs, skip_errors=True, keep_images=bool(arguments.output)), start=1):
            if show_progress:
                print(f"\r{position}/{len(inputs)} images", end="", file=sys.stderr, flush=True)
            if outcome.error is not None or outcome.result is None:
                failed.append(outcome.source)
                records.append({"source": outcome.source, "error": str(outcome.error)})
                continue

            result = outcome.result
            records.append(result.to_dict())
            labels = ", ".join(f"{label} {score:.2f}" for label, score in zip(result.labels, result.confidences))
            print(f"{outcome.source}: {len(result)} face{'s' if len(result) != 1 else ''}" + (f" ({labels})" if labels else ""), file=report)

            if arguments.output and outcome.image is not None:
                target = arguments.output / _annotated_name(Path(outcome.source), used_names)
                if not cv2.imwrite(str(target), annotate(outcome.image, result, copy=False)):
                    failed.append(outcome.source)
                    logger.error("Cannot write annotated image %s", target)
    except KeyboardInterrupt:
        # The images done so far still get their JSON record, so a long run stopped with Ctrl-C loses nothing.
        interrupted = True
    if show_progress:
        print(file=sys.stderr)

    if arguments.json_file:
        text = json.dumps({"detector": pipeline.detector.name, "results": records}, indent=2)
        if json_to_stdout:
            print(text)
        else:
            arguments.json_file.parent.mkdir(parents=True, exist_ok=True)
            arguments.json_file.write_text(text + "\n", encoding="utf-8")

    faces = sum(len(record.get("faces", [])) for record in records)
    stopped = f", stopped by Ctrl-C after {len(records)} images" if interrupted else ""
    print(
        f"{len(records) - len(failed)} of {len(inputs)} images processed, {faces} faces found "
        f"(detector {pipeline.detector.name}, classifier {', '.join(pipeline.class_names)}{stopped}).",
        file=report,
    )
    if interrupted:
        return EXIT_INTERRUPTED
    if failed:
        print(f"emodetect: error: {len(failed)} inputs failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def run_models(arguments: argparse.Namespace) -> int:
    """Handle `emodetect models`."""
    from emodetect import weights
    from emodetect.classifiers import CLASSIFIERS
    from emodetect.detectors import DETECTORS
    from emodetect.training.faces import cache_usage, default_cache_dir

    print("Detectors:")
    for name in DETECTORS.names():
        print(f"  {name:<14} {DETECTORS.get(name).description}")
    print("Classifiers:")
    for name in CLASSIFIERS.names():
        print(f"  {name:<14} {CLASSIFIERS.get(name).description}")
    print(f"Weights (cache {weights.cache_dir()}):")
    for name in sorted(weights.REGISTRY):
        print(f"  {name:<32} {weights.status(name):<8} used by {weights.REGISTRY[name].used_by}")

    # Training and evaluation with --faces cache the crops of every image they read, so the folder only grows.
    entries, size = cache_usage()
    print(f"Face crops (cache {default_cache_dir()}):")
    print(f"  {entries} images, {size / 1e6:.1f} MB. Deleting the folder is safe: entries are rebuilt when needed.")
    return EXIT_OK


def run_download(arguments: argparse.Namespace) -> int:
    """Handle `emodetect download`."""
    from emodetect import weights

    if arguments.source is None:
        paths = weights.fetch_all()
        for name, path in paths.items():
            print(f"{name}: {path}")
        return EXIT_OK

    report = weights.import_weights(arguments.source)
    for name in report.imported:
        print(f"imported  {name}")
    for name in report.already_cached:
        print(f"cached    {name} (already present and verified)")
    for name in report.missing:
        print(f"missing   {name} (not in {arguments.source})")
    for name, reason in report.rejected.items():
        print(f"rejected  {name}: {reason}")
    print(f"Cache: {weights.cache_dir()}")

    # Files missing from the folder are fine when the cache already contains them.
    still_missing = [name for name in sorted(weights.REGISTRY) if weights.status(name) != "cached"]
    if still_missing:
        print(f"emodetect: error: still not cached: {', '.join(still_missing)}", file=sys.stderr)
    return EXIT_FAILED if report.rejected or still_missing else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
