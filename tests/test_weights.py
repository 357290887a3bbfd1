"""Weights registry, cache, import from a folder, offline errors and hash checks."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from emodetect import weights
from emodetect.errors import WeightsError

SSD_WEIGHTS = "opencv_face_detector_uint8.pb"


def test_registry_pins_sha256_and_official_urls():
    for name, weight in weights.REGISTRY.items():
        assert weight.name == name
        assert len(weight.sha256) == 64
        assert weight.url.startswith("https://raw.githubusercontent.com/opencv/")


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EMODETECT_HOME", str(tmp_path / "elsewhere"))

    assert weights.cache_dir() == tmp_path / "elsewhere"


def test_cache_dir_not_created_by_lookup(tmp_path, monkeypatch):
    monkeypatch.setenv("EMODETECT_HOME", str(tmp_path / "never-created"))

    weights.cached_path(SSD_WEIGHTS)
    weights.status(SSD_WEIGHTS)

    assert not (tmp_path / "never-created").exists()


def test_import_copies_verified_files(shared_dir, isolated_cache):
    report = weights.import_weights(shared_dir / "weights")

    assert sorted(report.imported) == sorted(weights.REGISTRY)
    assert report.rejected == {}
    for name in weights.REGISTRY:
        assert weights.status(name) == "cached"


def test_import_twice_reports_already_cached(shared_dir):
    weights.import_weights(shared_dir / "weights")

    report = weights.import_weights(shared_dir / "weights")

    assert report.imported == []
    assert sorted(report.already_cached) == sorted(weights.REGISTRY)


def test_import_rejects_wrong_hash(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / SSD_WEIGHTS).write_bytes(b"not the SSD")

    report = weights.import_weights(source)

    assert SSD_WEIGHTS in report.rejected
    assert hashlib.sha256(b"not the SSD").hexdigest() in report.rejected[SSD_WEIGHTS]
    assert weights.status(SSD_WEIGHTS) == "missing"


def test_import_from_missing_folder_raises(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        weights.import_weights(tmp_path / "absent")


def test_fetch_returns_cached_file(shared_dir):
    weights.import_weights(shared_dir / "weights")

    path = weights.fetch(SSD_WEIGHTS)

    assert path == weights.cache_dir() / SSD_WEIGHTS
    assert weights.file_sha256(path) == weights.REGISTRY[SSD_WEIGHTS].sha256


def test_offline_error_lists_files_and_urls():
    with pytest.raises(WeightsError) as caught:
        weights.fetch(SSD_WEIGHTS)

    message = str(caught.value)
    assert SSD_WEIGHTS in message
    assert weights.REGISTRY[SSD_WEIGHTS].url in message
    assert "emodetect download --from DIR" in message


def test_corrupt_cached_file_caught_by_hash(shared_dir, isolated_cache):
    weights.import_weights(shared_dir / "weights")
    cached = isolated_cache / SSD_WEIGHTS
    data = bytearray(cached.read_bytes())
    data[1000] ^= 0xFF
    cached.write_bytes(bytes(data))

    assert weights.status(SSD_WEIGHTS) == "corrupt"
    with pytest.raises(WeightsError, match="corrupt"):
        weights.fetch(SSD_WEIGHTS)


def test_failed_download_raises_weights_error(monkeypatch):
    # Port 9 (discard) on loopback refuses connections at once, so this exercises pooch's real download path.
    monkeypatch.delenv("EMODETECT_OFFLINE")
    original = weights.REGISTRY[SSD_WEIGHTS]
    monkeypatch.setitem(
        weights.REGISTRY, SSD_WEIGHTS, weights.WeightFile(SSD_WEIGHTS, "http://127.0.0.1:9/ssd.pb", original.sha256, "ssd")
    )

    with pytest.raises(WeightsError, match="opencv_face_detector_uint8.pb: downloading failed"):
        weights.fetch(SSD_WEIGHTS)

    assert not (weights.cache_dir() / SSD_WEIGHTS).exists()


@pytest.fixture
def serve_folder():
    """Serve a folder over HTTP on a free loopback port; return the base URL."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None  # type: ignore[method-assign]
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_download_with_wrong_hash_keeps_no_file(tmp_path, monkeypatch, serve_folder):
    (tmp_path / SSD_WEIGHTS).write_bytes(b"tampered weights")
    url = f"{serve_folder(tmp_path)}/{SSD_WEIGHTS}"
    monkeypatch.delenv("EMODETECT_OFFLINE")
    monkeypatch.setitem(
        weights.REGISTRY, SSD_WEIGHTS, weights.WeightFile(SSD_WEIGHTS, url, weights.REGISTRY[SSD_WEIGHTS].sha256, "ssd")
    )

    with pytest.raises(WeightsError):
        weights.fetch(SSD_WEIGHTS)

    assert not (weights.cache_dir() / SSD_WEIGHTS).exists()


def test_download_from_server_verifies_and_caches(shared_dir, monkeypatch, serve_folder):
    base_url = serve_folder(shared_dir / "weights")
    monkeypatch.delenv("EMODETECT_OFFLINE")
    for name, weight in list(weights.REGISTRY.items()):
        url = f"{base_url}/{name}"
        monkeypatch.setitem(weights.REGISTRY, name, weights.WeightFile(name, url, weight.sha256, weight.used_by))

    paths = weights.fetch_all()

    assert sorted(paths) == sorted(weights.REGISTRY)
    assert all(weights.status(name) == "cached" for name in weights.REGISTRY)


@pytest.mark.parametrize(
    "value, offline",
    [("1", True), ("TRUE", True), ("on", True), ("2", True), ("enabled", True), ("0", False), ("off", False), ("No", False), ("", False)],
)
def test_offline_variable_values(monkeypatch, value, offline):
    monkeypatch.setenv("EMODETECT_OFFLINE", value)

    assert weights.is_offline() is offline


def test_import_from_file_asks_for_folder(tmp_path):
    file = tmp_path / "opencv_face_detector.pbtxt"
    file.write_text("not a folder")

    with pytest.raises(WeightsError, match="received the file"):
        weights.import_weights(file)
