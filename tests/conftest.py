"""Shared fixtures.

Tests never touch the user's weights cache or the network: every test runs with `EMODETECT_HOME` pointing to
its own empty temporary folder and `EMODETECT_OFFLINE=1`. Tests that need the SSD use `ssd_home`, a cache
filled once per session by importing the weights from the shared data folder.

The shared data folder is `../shared` beside the repository, or the folder named by `EMODETECT_SHARED`.
When it is missing, tests that need it are skipped with the reason, except under CI (`CI=true`), where
they fail: CI always has the folder, so its absence there is a broken setup, not a reason to skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMODETECT_SHARED", REPOSITORY.parent / "shared"))


def _require(path: Path) -> Path:
    if path.exists():
        return path
    message = f"shared data not found at '{path}' (set EMODETECT_SHARED to its folder)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the weights cache at an empty folder and forbid downloads for every test."""
    home = tmp_path_factory.mktemp("emodetect-home")
    monkeypatch.setenv("EMODETECT_HOME", str(home))
    monkeypatch.setenv("EMODETECT_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED)


@pytest.fixture(scope="session")
def paper_images(shared_dir: Path) -> Path:
    return _require(shared_dir / "data" / "paper-happy-sad")


@pytest.fixture(scope="session")
def fer_val(shared_dir: Path) -> Path:
    return _require(shared_dir / "data" / "fer2013" / "val")


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Path:
    """A cache folder filled once per session with `emodetect download --from <shared>/weights`."""
    from emodetect.cli import main

    home = tmp_path_factory.mktemp("seeded-home")
    previous = os.environ.get("EMODETECT_HOME")
    os.environ["EMODETECT_HOME"] = str(home)
    try:
        assert main(["download", "--from", str(_require(shared_dir / "weights"))]) == 0
    finally:
        if previous is None:
            os.environ.pop("EMODETECT_HOME")
        else:
            os.environ["EMODETECT_HOME"] = previous
    return home


@pytest.fixture
def ssd_home(seeded_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Use the seeded cache for one test."""
    monkeypatch.setenv("EMODETECT_HOME", str(seeded_home))
    return seeded_home


@pytest.fixture
def copy_image(paper_images: Path, tmp_path: Path):
    """Copy one of the happy/sad web photos into the test's folder and return the copy's path."""

    def copy(relative: str) -> Path:
        source = paper_images / relative
        target = tmp_path / source.name
        shutil.copyfile(source, target)
        return target

    return copy


@pytest.fixture(scope="session")
def blank_image() -> np.ndarray:
    """A flat grey 480x640 BGR image with no face."""
    return np.full((480, 640, 3), 128, dtype=np.uint8)
