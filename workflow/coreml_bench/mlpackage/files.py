"""Inspecting and saving ``.mlpackage`` directories: sizes, checksums, op-type counts."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import atomic_directory, directory_bytes, directory_sha256

if TYPE_CHECKING:
    import coremltools as ct

WEIGHT_FILE = Path("Data/com.apple.CoreML/weights/weight.bin")


def weight_file_bytes(package: Path) -> int:
    """Bytes of the package's weight blob (0 when a tiny model stores all weights inline)."""
    blob = Path(package) / WEIGHT_FILE
    return blob.stat().st_size if blob.exists() else 0


def _operations(block: Any) -> list[Any]:
    ops = []
    for op in block.operations:
        ops.append(op)
        for nested in op.blocks:
            ops.extend(_operations(nested))
    return ops


def op_type_counts(spec: Any) -> dict[str, int]:
    """Counts of MIL op types in every function of an ML program spec (nested blocks too)."""
    counts: Counter[str] = Counter()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            counts.update(op.type for op in _operations(block))
    return dict(sorted(counts.items()))


def open_package(package: Path, **kwargs: Any) -> ct.models.MLModel:
    """``MLModel`` of a package, leaving the package's timestamps as they were.

    Opening a package rewrites its Manifest.json (same bytes, new mtime); for an upstream
    Snakemake output that would look like a change and trigger needless reruns.
    """
    import coremltools as ct

    package = Path(package)
    watched = [package, package / "Manifest.json"]
    stamps = [(p, p.stat().st_atime_ns, p.stat().st_mtime_ns) for p in watched if p.exists()]
    try:
        return ct.models.MLModel(str(package), **kwargs)
    finally:
        for path, atime, mtime in stamps:
            os.utime(path, ns=(atime, mtime))


def load_spec(package: Path) -> Any:
    """The model spec of a package, without compiling it (works on Linux)."""
    return open_package(package, skip_model_load=True).get_spec()


def input_description(package: Path) -> dict[str, Any]:
    """Name, type and shape of a package's (first) input, as its spec declares it.

    Published packages may take an image (Core ML scales and colour-orders it itself) where
    the workflow's own conversions take a normalised tensor; the manifest says which.
    """
    spec = load_spec(package)
    feature = spec.description.input[0]
    kind = feature.type.WhichOneof("Type")
    described: dict[str, Any] = {"name": feature.name, "type": kind}
    if kind == "imageType":
        image = feature.type.imageType
        described["shape"] = [1, 3, int(image.height), int(image.width)]
        described["color_space"] = image.ColorSpace.Name(image.colorSpace)
    elif kind == "multiArrayType":
        described["shape"] = [int(d) for d in feature.type.multiArrayType.shape]
    return described


def package_summary(package: Path) -> dict[str, Any]:
    """What a manifest records about any package: sizes, checksums, op counts.

    ``package_sha256`` is of the bytes (the integrity check of every later reader);
    ``package_content_sha256`` is of the model (stable across identical reruns: the digest
    to compare when asking whether a rerun reproduced a result).
    """
    from .digest import package_content_digest

    spec = load_spec(package)
    return {
        "package_bytes": directory_bytes(package),
        "weight_bytes": weight_file_bytes(package),
        "package_sha256": directory_sha256(package),
        "package_content_sha256": package_content_digest(package),
        "specification_version": spec.specificationVersion,
        "op_counts": op_type_counts(spec),
    }


class PackageIntegrityError(RuntimeError):
    """A package is not the one its manifest recorded (damaged, truncated or replaced)."""


def verify_package(package: Path, manifest: Path) -> str:
    """Check ``package`` against the ``package_sha256`` its manifest recorded; the digest.

    Every stage that reads a package it did not just write calls this first, so a damaged
    package is refused with its path instead of being scored.
    """
    from ..io import RecordError, read_json

    record = read_json(manifest)
    expected = record.get("package_sha256") if isinstance(record, dict) else None
    if not isinstance(expected, str):
        raise RecordError(f"record {str(manifest)!r} has no package_sha256 to check {package}")
    if not Path(package).is_dir():
        raise PackageIntegrityError(f"package {str(package)!r} does not exist")
    actual = directory_sha256(package)
    if actual != expected:
        raise PackageIntegrityError(
            f"package {str(package)!r} does not match its manifest {str(manifest)!r}: sha256 "
            f"{actual} but {expected} was recorded; it was changed or damaged after it was "
            "written. Delete it (and its manifest) and rerun to rebuild it."
        )
    return actual


def save_atomic(mlmodel: ct.models.MLModel, package: Path) -> None:
    """Save into a staging directory beside the target, then rename into place.

    A failed or killed save never leaves a half-written package at the output path.
    """
    with atomic_directory(Path(package)) as staged:
        mlmodel.save(str(staged))
