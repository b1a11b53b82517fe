"""A damaged package is refused with its path: by its recorded digest before any stage reads
it, and by the program loader when there is no digest to compare (a truncated weight.bin)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from coreml_bench.executor import ProgramExecutor
from coreml_bench.io import RecordError
from coreml_bench.mlpackage.files import (
    PackageIntegrityError,
    package_summary,
    verify_package,
)
from coreml_bench.mlpackage.program import WeightMappingError

WEIGHTS = "Data/com.apple.CoreML/weights/weight.bin"


@pytest.fixture
def package_and_manifest(fashion_package: Path, tmp_path: Path) -> tuple[Path, Path]:
    package = tmp_path / "model.mlpackage"
    shutil.copytree(fashion_package, package)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"stage": "compress", **package_summary(package)}))
    return package, manifest


def test_an_intact_package_verifies(package_and_manifest: tuple[Path, Path]) -> None:
    package, manifest = package_and_manifest
    (package / ".snakemake_timestamp").touch()  # Snakemake's marker is not part of it
    assert verify_package(package, manifest) == json.loads(manifest.read_text())["package_sha256"]


def test_a_truncated_weight_file_is_refused_naming_the_package(
    package_and_manifest: tuple[Path, Path],
) -> None:
    package, manifest = package_and_manifest
    blob = package / WEIGHTS
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])
    with pytest.raises(PackageIntegrityError, match=f"package '{package}' does not match"):
        verify_package(package, manifest)
    with pytest.raises(WeightMappingError, match=f"package '{package}' cannot be read"):
        ProgramExecutor(package)


def test_a_manifest_without_a_digest_is_named(
    package_and_manifest: tuple[Path, Path], tmp_path: Path
) -> None:
    package, _ = package_and_manifest
    bare = tmp_path / "bare.json"
    bare.write_text("{}")
    with pytest.raises(RecordError, match="has no package_sha256"):
        verify_package(package, bare)
