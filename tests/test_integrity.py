"""Damaged artifacts are refused, never scored; a failed run keeps the last good tables; records
are world-readable; `coreml-bench verify` finds what changed. Real snakemake runs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, run_snakemake, write_config

FASHION = "/usr/share/datasets/fashion-mnist"
CONFIG = {
    "study": "integrity",
    "models": [
        {
            "id": "cnn",
            "architecture": "fashion_cnn",
            "num_classes": 10,
            "source": {"kind": "random"},
        }
    ],
    "experiments": [
        {"id": "fp16", "compression": {"algorithm": "none"}},
        {"id": "int8", "compression": {"algorithm": "quantize_linear", "dtype": "int8"}},
    ],
    "data": {
        "evaluation": {"kind": "fashion_mnist", "root": FASHION, "split": "test"},
        "batch_size": 64,
        "limit": 64,
    },
    "profiling": {"runs": 2, "warmup": 0},
}
INT8 = "results/compressed/cnn/int8/trial1"


def _verify(results: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "coreml_bench.cli", "verify", str(results)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("integrity")
    write_config(workdir, CONFIG)
    old = os.umask(0o022)
    try:
        run_snakemake(workdir)
    finally:
        os.umask(old)
    return workdir


def test_records_and_tables_are_world_readable(finished_run: Path) -> None:
    results = finished_run / "results"
    paths = [
        results / "tables/summary.csv",
        results / "tables/summary.md",
        results / f"{INT8[len('results/') :]}/manifest.json",
        results / "evaluation/cnn/int8/trial1.json",
        results / "weights/cnn.pth",
    ]
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_uploaded_packages_carry_no_snakemake_marker(finished_run: Path) -> None:
    artifacts = finished_run / "results/mlflow/artifacts"
    uploaded = [p for p in artifacts.rglob("*") if "model.mlpackage" in p.as_posix()]
    assert any(p.name == "weight.bin" for p in uploaded)
    assert not [p for p in uploaded if p.name == ".snakemake_timestamp"]
    assert (finished_run / INT8 / "model.mlpackage/.snakemake_timestamp").exists()


def test_damaged_package_is_refused_and_the_tables_survive(
    finished_run: Path, tmp_path: Path
) -> None:
    import shutil

    workdir = tmp_path / "copy"
    shutil.copytree(finished_run, workdir, symlinks=True)
    assert _verify(workdir / "results").returncode == 0
    tables = (workdir / "results/tables/summary.csv").read_text()
    # Overwrite weight data, headers and sizes intact: it would still load and score.
    blob = workdir / INT8 / "model.mlpackage/Data/com.apple.CoreML/weights/weight.bin"
    data = bytearray(blob.read_bytes())
    data[-4096:] = bytes(4096)
    blob.write_bytes(bytes(data))
    found = _verify(workdir / "results")
    assert found.returncode == 1
    assert "model.mlpackage" in found.stderr and "does not match its manifest" in found.stderr

    result = run_snakemake(workdir, "--forcerun", "evaluate", check=False)
    assert result.returncode != 0
    log = (workdir / "results/logs/evaluate/cnn/int8/trial1.log").read_text()
    assert "does not match its manifest" in log and "weight.bin" not in log.split("\n")[-1]
    assert (workdir / "results/tables/summary.csv").read_text() == tables


def test_garbage_manifest_is_named_and_the_tables_survive(
    finished_run: Path, tmp_path: Path
) -> None:
    import shutil

    workdir = tmp_path / "copy"
    shutil.copytree(finished_run, workdir, symlinks=True)
    tables = (workdir / "results/tables/summary.csv").read_text()
    manifest = workdir / INT8 / "manifest.json"
    manifest.write_text("{ not json")
    found = _verify(workdir / "results")
    assert found.returncode == 1 and f"{manifest}' is not valid JSON" in found.stderr
    result = run_snakemake(workdir, check=False)
    assert result.returncode != 0
    logs = "".join(
        p.read_text() for p in (workdir / "results/logs").rglob("*.log") if "int8" in p.parts
    )
    assert f"record '{manifest.relative_to(workdir)}' is not valid JSON" in logs or (
        f"record '{manifest}' is not valid JSON" in logs
    )
    assert (workdir / "results/tables/summary.csv").read_text() == tables
    assert json.loads((workdir / "results/evaluation/cnn/fp16/trial1.json").read_text())
