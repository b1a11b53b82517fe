"""Stages download_weights and import_package: a model's checkpoint (or published package)
at a path, verified and atomically.

Sources: torchvision weights (URL + the sha256 prefix in the file name, as torchvision checks
it), any URL with a full sha256, a local file, a file shipped inside a Python package, or a
seeded random initialisation. Every source is written to a temp file beside the destination
and renamed onto it only once complete and verified, so a failed download, a checksum
mismatch or an interruption never leaves a partial file at ``dest`` (nor replaces an old one).
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.resources
import logging
import re
import shutil
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from tqdm import tqdm

from .fingerprint import record_provenance
from .io import CHUNK, atomic_directory, atomic_stream, sha256_file, write_json_atomic
from .mlpackage.files import input_description, package_summary
from .models import ModelSpec, build_model
from .models.sources import (
    CoreMLPackageSource,
    LocalFileSource,
    PackageSource,
    RandomInitSource,
    TorchvisionSource,
    UrlSource,
    WeightsSource,
)
from .provenance import StageTimer, package_versions

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    import torch

log = logging.getLogger(__name__)

# torch.hub's rule (HASH_REGEX in torch/hub.py): the hex run after a '-' and before a '.' of
# the file name is a sha256 prefix, e.g. "mobilenet_v2-b0353104.pth" -> "b0353104".
HASH_PREFIX = re.compile(r"-([a-f0-9]*)\.")
SUPPORTED_SCHEMES = ("http", "https", "file")


class DownloadError(RuntimeError):
    """The bytes could not be fetched; the message names the URL and the HTTP status/reason."""


class ChecksumError(DownloadError):
    """The bytes arrived but are not the expected ones; the message names both hashes."""


class ArchiveError(ValueError):
    """A package zip is unsafe (zip-slip, links) or does not hold exactly one .mlpackage."""


def _verify(origin: str, actual: str, sha256: str | None, sha256_prefix: str | None) -> None:
    if sha256 is not None and actual != sha256.lower():
        raise ChecksumError(
            f"checksum mismatch for {origin}: expected sha256 {sha256.lower()}, got {actual}"
        )
    if sha256_prefix is not None and not actual.startswith(sha256_prefix.lower()):
        raise ChecksumError(
            f"checksum mismatch for {origin}: expected sha256 starting with "
            f"{sha256_prefix.lower()}, got {actual}"
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
    """Stream ``url`` to ``dest`` while hashing; verify, then rename. Returns the full sha256.

    ``sha256`` is checked exactly, ``sha256_prefix`` the way torchvision does
    (``hexdigest.startswith(prefix)``); both may be given. On any failure nothing is left at
    ``dest`` that was not there before.
    """
    dest = Path(dest)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise ValueError(f"unsupported URL scheme {scheme!r} in {url} (use http, https or file)")
    if sha256_prefix is not None and not sha256_prefix:
        # An empty prefix matches everything: refuse rather than report a check that is not one.
        raise ValueError(f"empty sha256 prefix for {url}")

    digest = hashlib.sha256()
    received = 0
    with atomic_stream(dest) as handle:
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except urllib.error.HTTPError as error:
            error.close()
            raise DownloadError(
                f"download of {url} failed: HTTP {error.code} {error.reason}"
            ) from error
        except urllib.error.URLError as error:
            raise DownloadError(f"download of {url} failed: {error.reason}") from error
        except (OSError, http.client.HTTPException) as error:
            raise DownloadError(f"download of {url} failed: {error!r}") from error

        with response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                file=sys.stderr,
                disable=not progress,
                leave=False,
            ) as bar:
                while True:
                    # Only the network read is wrapped: a local disk error should surface as
                    # itself, not be blamed on the URL.
                    try:
                        chunk = response.read(CHUNK)
                    except (OSError, http.client.HTTPException) as error:
                        raise DownloadError(
                            f"download of {url} failed after {received} bytes: {error!r}"
                        ) from error
                    if not chunk:
                        break
                    handle.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        # http.client returns b"" (no IncompleteRead) when the peer closes early, so check.
        if total is not None and received != total:
            raise DownloadError(
                f"download of {url} failed: truncated, got {received} of {total} bytes"
            )
        _verify(url, digest.hexdigest(), sha256, sha256_prefix)
    log.info("downloaded %s -> %s (%d bytes, sha256 %s)", url, dest, received, digest.hexdigest())
    return digest.hexdigest()


def torchvision_weights_url(weights: str) -> tuple[str, str]:
    """URL and sha256 prefix of a torchvision weights enum member like ``ResNet50_Weights.X``."""
    import torchvision  # lazy: torchvision is heavy and only this source kind needs it

    try:
        entry = torchvision.models.get_weight(weights)
    except (ValueError, KeyError, AttributeError) as error:
        # get_weight raises ValueError for an unknown enum class but a bare KeyError for an
        # unknown member; normalise both to one error that names what was asked for.
        raise ValueError(f"unknown torchvision weights {weights!r}: {error}") from None
    filename = urllib.parse.urlsplit(entry.url).path.rsplit("/", 1)[-1]
    match = HASH_PREFIX.search(filename)
    if match is None or not match.group(1):
        raise ValueError(f"torchvision weights {weights!r}: no sha256 prefix in {entry.url}")
    return entry.url, match.group(1)


def _copy_verified(src: IO[bytes], dest: Path, origin: str, sha256: str | None) -> str:
    """Copy an open stream to ``dest`` atomically, hashing on the way; verify before rename."""
    digest = hashlib.sha256()
    with atomic_stream(dest) as handle:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            handle.write(chunk)
            digest.update(chunk)
        _verify(origin, digest.hexdigest(), sha256, None)
    return digest.hexdigest()


def _package_resource(source: PackageSource) -> Traversable:
    parts = PurePosixPath(source.resource).parts
    if not parts or PurePosixPath(source.resource).is_absolute() or ".." in parts:
        raise ValueError(
            f"package resource {source.resource!r} must be a relative path inside the package"
        )
    try:
        root = importlib.resources.files(source.package)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"weights package {source.package!r} is not installed "
            f"(needed for resource {source.resource!r}): {error}",
            name=source.package,
        ) from error
    except TypeError as error:  # a plain module, not a package: it cannot hold resources
        raise ModuleNotFoundError(
            f"{source.package!r} is a module, not a package: {error}", name=source.package
        ) from error
    resource = root.joinpath(*parts)
    if not resource.is_file():
        raise FileNotFoundError(f"package {source.package!r} has no file {source.resource!r}")
    return resource


def _save_random(
    source: RandomInitSource, dest: Path, build_model: Callable[[], torch.nn.Module]
) -> None:
    import torch  # lazy: the Snakefile imports this module without torch

    # fork_rng restores the caller's CPU RNG afterwards: seeding is a side effect we own.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(source.seed)
        state = build_model().state_dict()
    with atomic_stream(dest) as handle:
        # Save to the handle, not the temp path: torch.save embeds a path's stem in the zip
        # entry names, which would make the bytes (and sha256) differ run to run.
        torch.save(state, handle)


def fetch_weights(
    source: WeightsSource,
    dest: Path,
    *,
    build_model: Callable[[], torch.nn.Module] | None = None,
    url_override: str | None = None,
) -> dict[str, object]:
    """Put the checkpoint of ``source`` at ``dest``; return what a manifest records about it.

    ``url_override`` replaces the URL of a torchvision/url source while keeping its checksum
    check (tests use it to serve bytes locally). ``build_model`` is required for a random
    source and ignored otherwise.
    """
    dest = Path(dest)
    if url_override is not None and not isinstance(source, TorchvisionSource | UrlSource):
        raise ValueError(f"url_override does not apply to a {source.kind!r} source")

    if isinstance(source, TorchvisionSource):
        url, prefix = torchvision_weights_url(source.weights)
        origin = url_override or url
        digest = download_url(origin, dest, sha256_prefix=prefix)
        verified = "sha256-prefix"
    elif isinstance(source, UrlSource):
        origin = url_override or source.url
        digest = download_url(origin, dest, sha256=source.sha256)
        verified = "sha256" if source.sha256 else _unpinned(origin, digest)
    elif isinstance(source, LocalFileSource):
        if not source.path.is_file():
            raise FileNotFoundError(f"local weights file {str(source.path)!r} does not exist")
        origin = str(source.path)
        with open(source.path, "rb") as src:
            digest = _copy_verified(src, dest, origin, source.sha256)
        verified = "sha256" if source.sha256 else "none"
    elif isinstance(source, PackageSource):
        resource = _package_resource(source)
        origin = f"{source.package}:{source.resource}"
        # Traversable.open works for zipped packages too, unlike turning it into a Path.
        with resource.open("rb") as src:
            digest = _copy_verified(src, dest, origin, source.sha256)
        verified = "sha256" if source.sha256 else "none"
    elif isinstance(source, RandomInitSource):
        if build_model is None:
            raise ValueError("a random source needs build_model to create the network")
        _save_random(source, dest, build_model)
        origin, digest, verified = f"random(seed={source.seed})", sha256_file(dest), "none"
    else:
        raise TypeError(f"unsupported weights source {type(source).__name__}")

    return _source_record(source.kind, origin, digest, dest, verified)


def _source_record(kind: str, origin: str, digest: str, path: Path, verified: str) -> dict:
    """What a manifest records about where a model's bytes came from."""
    return {
        "kind": kind,
        "origin": origin,
        "sha256": digest,
        "bytes": path.stat().st_size,
        "verified": verified,
    }


# Finder metadata that macOS zips carry beside the package; never part of the model.
_ZIP_JUNK = ("__MACOSX/",)


def _package_root(archive: Path, info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The ``*.mlpackage`` folder a member lies in; refuses members that could escape ``dest``."""
    name = info.filename
    path = PurePosixPath(name)
    mode = info.external_attr >> 16
    if path.is_absolute() or ".." in path.parts or "\\" in name or name.startswith("~"):
        raise ArchiveError(f"{archive}: member {name!r} points outside the extraction folder")
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"{archive}: member {name!r} is a symbolic link; refused")
    for i, part in enumerate(path.parts):
        if part.endswith(".mlpackage"):
            return PurePosixPath(*path.parts[: i + 1])
    return None


def extract_mlpackage(archive: Path, dest: Path) -> None:
    """Unpack the one ``.mlpackage`` of a zip to ``dest``, atomically and zip-slip-safe.

    Every member must lie inside that package folder (macOS ``__MACOSX`` metadata is
    ignored); absolute paths, ``..`` components and symbolic links are refused before a
    single byte is written. The package is assembled in a temp folder beside ``dest`` and
    renamed onto it only once it is complete and has a ``Manifest.json``.
    """
    archive, dest = Path(archive), Path(dest)
    with zipfile.ZipFile(archive) as bundle:
        members = [m for m in bundle.infolist() if not m.filename.startswith(_ZIP_JUNK)]
        roots = {_package_root(archive, m) for m in members}
        if None in roots:
            stray = [m.filename for m in members if _package_root(archive, m) is None][:3]
            raise ArchiveError(f"{archive}: members outside any .mlpackage folder: {stray}")
        if len(roots) != 1:
            raise ArchiveError(
                f"{archive}: expected exactly one .mlpackage, found {sorted(map(str, roots))}"
            )
        root = roots.pop()
        assert root is not None
        with atomic_directory(dest) as staged:
            staged.mkdir()
            for member in members:
                relative = PurePosixPath(member.filename).relative_to(root)
                target = staged.joinpath(*relative.parts)
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
            if not (staged / "Manifest.json").is_file():
                raise ArchiveError(f"{archive}: {root} has no Manifest.json; not an .mlpackage")
    log.info("unpacked %s from %s -> %s", root, archive, dest)


def fetch_coreml_package(
    source: CoreMLPackageSource,
    archive: Path,
    package: Path,
    *,
    url_override: str | None = None,
) -> dict[str, object]:
    """Download a published package zip (checksum-verified when pinned) and unpack it."""
    origin = url_override or source.url
    digest = download_url(origin, archive, sha256=source.sha256)
    verified = "sha256" if source.sha256 else _unpinned(origin, digest)
    extract_mlpackage(archive, package)
    return _source_record(source.kind, origin, digest, archive, verified)


def _unpinned(origin: str, digest: str) -> str:
    log.warning(
        "UNVERIFIED download: no sha256 for %s in the config; the bytes received have sha256 "
        "%s - pin it as source.sha256 once you trust them",
        origin,
        digest,
    )
    return "none"


def download_weights(*, model: ModelSpec, weights: Path, manifest: Path) -> dict[str, object]:
    """Stage download_weights: the checkpoint of ``model.source`` and its manifest."""
    timer = StageTimer()
    record = fetch_weights(
        model.source,
        weights,
        build_model=lambda: build_model(model.architecture, model.num_classes),
    )
    manifest_record = {
        "stage": "download",
        "model": model.id,
        **record,
        "timing": timer.summary(),
        "provenance": record_provenance("download_weights"),
    }
    write_json_atomic(manifest, manifest_record)
    return manifest_record


def import_package(
    *, model: ModelSpec, archive: Path, package: Path, manifest: Path
) -> dict[str, object]:
    """Stage import_package: a published Core ML package becomes the model's fp16 baseline."""
    if not isinstance(model.source, CoreMLPackageSource):
        raise ValueError(f"model {model.id!r}: import_package needs a coreml_package source")
    timer = StageTimer()
    with timer.section("download"):
        record = fetch_coreml_package(model.source, archive, package)
    manifest_record = {
        # "convert" on purpose: downstream stages treat this as the fp16 baseline.
        "stage": "convert",
        "model": model.id,
        "package": str(package),
        "source": record,
        "input": input_description(package),
        **package_summary(package),
        "timing": timer.summary(),
        "versions": package_versions(),
        "provenance": record_provenance("import_package"),
    }
    write_json_atomic(manifest, manifest_record)
    return manifest_record


def download_config_file(
    *, url: str, sha256: str | None, experiment: str, config: Path, manifest: Path
) -> dict[str, object]:
    """Stage download_compression_config: a published coremltools YAML config, verified."""
    timer = StageTimer()
    digest = download_url(url, config, sha256=sha256)
    record = {
        "stage": "download_compression_config",
        "experiment": experiment,
        "url": url,
        "sha256": digest,
        "bytes": Path(config).stat().st_size,
        "verified": "sha256" if sha256 else _unpinned(url, digest),
        "timing": timer.summary(),
        "provenance": record_provenance("download_compression_config"),
    }
    write_json_atomic(manifest, record)
    return record
