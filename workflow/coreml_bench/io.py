"""Files on disk: atomic writes, content digests and JSON records that name their path.

Every artifact of the workflow is written here or through :func:`atomic_path`: a temp file
beside the target, fsynced, renamed into place. A crash or Ctrl-C mid-write leaves the previous
file (or nothing), never a truncated one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

CHUNK = 1 << 20
# Files Snakemake adds to a directory output once its job finished: not part of the artifact.
SNAKEMAKE_MARKERS = frozenset({".snakemake_timestamp"})


class RecordError(ValueError):
    """A JSON record on disk is missing or unreadable; the message names the file."""


@functools.cache
def file_mode() -> int:
    """The mode a plain ``open()`` would give a new file (temp files are created 0600).

    umask can only be read by setting it, hence once, cached.
    """
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(dest: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temp path beside ``dest`` for a writer that wants a file name (torch.save, savefig).

    Renamed onto ``dest`` only if the body finishes; BaseException is caught so Ctrl-C also
    removes the temp file. Same directory => same filesystem, so ``os.replace`` is atomic.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            # Durable before visible: a crash right after the rename must not expose a
            # correctly named but truncated file.
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_stream(dest: Path) -> Iterator[IO[bytes]]:
    """A binary handle on a temp file beside ``dest``; renamed onto it when the body ends."""
    with atomic_path(dest, suffix=".part") as tmp, open(tmp, "wb") as handle:
        yield handle
        handle.flush()


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON (sorted keys, indented) atomically."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    write_text_atomic(path, text)


def replace_directory(staged: Path, dest: Path) -> None:
    """Move a fully written directory onto ``dest`` (removing an old one first)."""
    if dest.exists():
        shutil.rmtree(dest)
    staged.rename(dest)


@contextlib.contextmanager
def atomic_directory(dest: Path) -> Iterator[Path]:
    """A staging directory beside ``dest`` (same name inside it), moved into place at the end.

    A failed or killed writer never leaves a half-written directory at ``dest``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    staged = tmp_dir / dest.name
    try:
        yield staged
        replace_directory(staged, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp_dir)


def read_json(path: Path) -> Any:
    """A JSON record; a missing or damaged file raises RecordError naming it."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise RecordError(f"record {str(path)!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RecordError(f"record {str(path)!r} is not valid JSON: {error}") from None


def sha256_file(path: Path) -> str:
    """Full sha256 hex digest of a file, read in chunks so big checkpoints stay out of RAM."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def directory_files(path: Path) -> list[Path]:
    """The files of a directory artifact, sorted, without Snakemake's markers."""
    return sorted(
        p for p in Path(path).rglob("*") if p.is_file() and p.name not in SNAKEMAKE_MARKERS
    )


def directory_sha256(path: Path) -> str:
    """A checksum over relative file names and contents, stable across copies."""
    digest = hashlib.sha256()
    root = Path(path)
    for file in directory_files(root):
        digest.update(str(file.relative_to(root)).encode())
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                digest.update(chunk)
    return digest.hexdigest()


def directory_file_digests(directory: Path) -> dict[str, str]:
    """sha256 per file of a directory (relative posix path -> digest)."""
    return {
        path.relative_to(directory).as_posix(): sha256_file(path)
        for path in directory_files(directory)
    }


def json_digest(obj: Any) -> str:
    """sha256 of the canonical JSON form; ``default=str`` so Paths etc. hash by their text."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in directory_files(path))


def copy_atomic(source: Path, dest: Path) -> None:
    """Copy a file's bytes onto ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)


def save_with(writer: Callable[[Path], None], dest: Path, suffix: str = ".tmp") -> None:
    """Call ``writer(temp_path)`` and rename the result onto ``dest`` atomically."""
    with atomic_path(dest, suffix=suffix) as tmp:
        writer(tmp)
