"""Downloadable weights: a hash-pinned registry, a per-user cache, and import from a local folder.

Third-party files (the SSD face detector) are fetched with pooch from their official addresses on first use,
verified against their SHA256 and kept in the cache. The cache folder is `$EMODETECT_HOME` when that
variable is set, else the operating system's user cache folder (for example `~/.cache/emodetect` on Linux).

Machines without network fill the cache with `emodetect download --from DIR` (`import_weights`), which
checks each file's hash before it enters the cache. Setting `EMODETECT_OFFLINE=1` forbids every download, so
a missing file fails at once instead of after a network timeout.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from emodetect.errors import WeightsError

logger = logging.getLogger(__name__)

HOME_VARIABLE = "EMODETECT_HOME"
OFFLINE_VARIABLE = "EMODETECT_OFFLINE"


@dataclass(frozen=True)
class WeightFile:
    """One downloadable file: its cache name, official URL, SHA256 and what uses it."""

    name: str
    url: str
    sha256: str
    used_by: str


REGISTRY: dict[str, WeightFile] = {
    weight.name: weight
    for weight in (
        WeightFile(
            name="opencv_face_detector_uint8.pb",
            url=(
                "https://raw.githubusercontent.com/opencv/opencv_3rdparty/"
                "dnn_samples_face_detector_20180220_uint8/opencv_face_detector_uint8.pb"
            ),
            sha256="5c71d752ef2cbf2f457ac82fdd580fcb2522fd04c5efdaed18eb6d9e2843fbed",
            used_by="ssd",
        ),
        WeightFile(
            name="opencv_face_detector.pbtxt",
            url=(
                "https://raw.githubusercontent.com/opencv/opencv/ab129cfb80ea437e194c702f4b39fd67153ee15c/"
                "samples/dnn/face_detector/opencv_face_detector.pbtxt"
            ),
            sha256="5397808362fc6fb7c4044484848e297b22449d913a267fa7f8bd9d86dce29144",
            used_by="ssd",
        ),
    )
}
"""Every downloadable file, by cache name. Building it touches no disk and no network."""


def cache_dir() -> Path:
    """Return the weights cache folder: `$EMODETECT_HOME` if set, else the user cache folder."""
    configured = os.environ.get(HOME_VARIABLE)
    if configured:
        return Path(configured).expanduser()

    import pooch

    return Path(pooch.os_cache("emodetect"))


def is_offline() -> bool:
    """Return whether `EMODETECT_OFFLINE` forbids downloads: set to anything but empty, 0, false, no or off.

    An unexpected value such as `2` or `enabled` forbids downloads, because a machine that sets the
    variable at all most likely must not reach the network.
    """
    return os.environ.get(OFFLINE_VARIABLE, "").strip().lower() not in ("", "0", "false", "no", "off")


def file_sha256(path: Union[str, "os.PathLike[str]"]) -> str:
    """Return the hexadecimal SHA256 of a file."""
    import pooch

    return str(pooch.file_hash(str(path), alg="sha256"))


def _get(name: str) -> WeightFile:
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(f"Unknown weights file {name!r}. Known files: {sorted(REGISTRY)}.") from None


def cached_path(name: str) -> Path:
    """Return where `name` is (or would be) cached, without checking that it exists."""
    return cache_dir() / _get(name).name


def status(name: str) -> str:
    """Return `"cached"`, `"missing"` or `"corrupt"` (present with a wrong hash) for a registry file."""
    path = cached_path(name)
    if not path.is_file():
        return "missing"
    return "cached" if file_sha256(path) == REGISTRY[name].sha256 else "corrupt"


def _missing_message(names: Iterable[str], reason: str) -> str:
    lines = [reason, "The weights files needed are:"]
    for name in names:
        weight = REGISTRY[name]
        lines.append(f"  {weight.name}  {weight.url}  (sha256 {weight.sha256})")
    lines.append(
        f"Download them on a machine with network access and import them with "
        f"'emodetect download --from DIR', or run 'emodetect download' here once network is available. "
        f"Cache folder: {cache_dir()} (set {HOME_VARIABLE} to move it)."
    )
    return "\n".join(lines)


class _FetchFailure(Exception):
    """Failure to get one file; the message is the reason, without the instructions."""


def _fetch_one(name: str) -> Path:
    weight = _get(name)
    path = cache_dir() / weight.name
    state = status(name)
    if state == "cached":
        return path

    if state == "corrupt":
        logger.warning("Cached %s fails its SHA256 check; fetching it again.", path)
    if is_offline():
        problem = f"the cached copy at {path} is corrupt (SHA256 mismatch)" if state == "corrupt" else "it is not in the cache"
        raise _FetchFailure(f"{name}: {problem}, and {OFFLINE_VARIABLE} forbids downloads.")

    import pooch

    # pooch logs every download at INFO level through its own handler; this module logs it instead.
    pooch.get_logger().setLevel(logging.WARNING)
    logger.info("Downloading %s from %s", name, weight.url)
    try:
        # pooch downloads to a temporary file, checks the hash, then moves the file into place.
        downloaded = pooch.retrieve(
            weight.url, known_hash=f"sha256:{weight.sha256}", fname=weight.name, path=path.parent, progressbar=False
        )
    except Exception as error:  # requests, OSError and pooch's hash ValueError all mean "not available".
        problem = "the cached copy is corrupt and downloading it again failed" if state == "corrupt" else "downloading failed"
        detail = str(error).splitlines()[0].rstrip(".") if str(error) else ""
        raise _FetchFailure(f"{name}: {problem}: {type(error).__name__}: {detail}.") from error

    logger.info("Downloaded %s (sha256 %s)", downloaded, weight.sha256)
    return Path(downloaded)


def fetch(name: str) -> Path:
    """Return the local path of a registry file, downloading and verifying it if it is not cached.

    A cached file whose hash does not match is downloaded again; when that fails, the error reports the
    cached copy as corrupt.

    Args:
        name: A registry file name, such as `"opencv_face_detector_uint8.pb"`.

    Returns:
        Path of the verified file in the cache.

    Raises:
        WeightsError: The file is unknown, or missing or corrupt and cannot be downloaded.
    """
    return fetch_all([name])[name]


def fetch_all(names: Optional[Iterable[str]] = None) -> dict[str, Path]:
    """Fetch several registry files (all by default) and return their paths by name.

    Every file is tried even after one fails, so the error lists all files that are missing.

    Raises:
        WeightsError: A file is unknown or cannot be had. The message names every file that failed, with
            its URL and SHA256, and explains how to import it.
    """
    names = list(names) if names is not None else sorted(REGISTRY)
    paths: dict[str, Path] = {}
    problems: dict[str, str] = {}
    for name in names:
        try:
            paths[name] = _fetch_one(name)
        except _FetchFailure as failure:
            problems[name] = str(failure)
    if problems:
        reason = "Cannot get the weights:\n" + "\n".join(f"  {problem}" for problem in problems.values())
        raise WeightsError(_missing_message(problems, reason))
    return paths


@dataclass
class ImportReport:
    """Outcome of `import_weights`: files imported, already cached, missing from the folder, or rejected."""

    imported: list[str]
    already_cached: list[str]
    missing: list[str]
    rejected: dict[str, str]


def import_weights(folder: Union[str, "os.PathLike[str]"]) -> ImportReport:
    """Copy registry files from a local folder into the cache, checking each one's SHA256.

    A file enters the cache through a temporary name and a rename, so a failed copy never leaves a partial
    file. Files with a wrong hash are rejected and left out.

    Args:
        folder: Folder holding some or all registry files under their registry names.

    Returns:
        The report of what was imported, skipped and rejected.

    Raises:
        WeightsError: The folder does not exist or is a file.
    """
    folder = Path(folder)
    if folder.is_file():
        raise WeightsError(
            f"Expected a folder containing {sorted(REGISTRY)}, received the file '{folder}'. Pass the folder that "
            f"contains it."
        )
    if not folder.is_dir():
        raise WeightsError(f"Weights folder not found: '{folder}'. Expected a folder holding {sorted(REGISTRY)}.")

    report = ImportReport(imported=[], already_cached=[], missing=[], rejected={})
    target_dir = cache_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    for name, weight in sorted(REGISTRY.items()):
        source = folder / name
        if not source.is_file():
            report.missing.append(name)
            continue

        digest = file_sha256(source)
        if digest != weight.sha256:
            report.rejected[name] = f"SHA256 {digest} does not match the expected {weight.sha256}"
            logger.error("Rejected %s: SHA256 %s, expected %s", source, digest, weight.sha256)
            continue

        if status(name) == "cached":
            report.already_cached.append(name)
            continue

        handle, temporary = tempfile.mkstemp(dir=target_dir, prefix=f".{name}-")
        os.close(handle)
        try:
            shutil.copyfile(source, temporary)
            os.replace(temporary, target_dir / name)
        except OSError as error:
            # One file that cannot be written (a folder in its place, a full disk) must not stop the others.
            report.rejected[name] = f"cannot write it into the cache: {error}"
            logger.error("Cannot import %s into %s: %s", name, target_dir, error)
            continue
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
        report.imported.append(name)
        logger.info("Imported %s into %s (sha256 %s)", name, target_dir, digest)

    return report
