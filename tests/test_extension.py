"""Extending the workflow is one entry in one file: tests/plugins/extension_entries.py adds an
architecture, a Core ML-side and a torch-side algorithm, an evaluator, a profiler and a data
kind, and a real snakemake run uses all six with no other file touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from helpers import ROOT, run_snakemake, write_config

PLUGIN_DIR = Path(__file__).parent / "plugins"
PLUGIN_ENV = {
    "COREML_BENCH_PLUGINS": "extension_entries",
    "PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), str(ROOT / "workflow")]),
}


def _config(image_list: Path) -> dict:
    return {
        "study": "extension",
        "models": [{"id": "tiny", "architecture": "tiny_cnn", "source": {"kind": "random"}}],
        "experiments": [
            {"id": "fp16", "compression": {"algorithm": "none"}},
            {"id": "uniform4", "compression": {"algorithm": "palettize_uniform", "n_bits": 4}},
            {"id": "l1-50", "compression": {"algorithm": "prune_l1_torch", "amount": 0.5}},
        ],
        "data": {"evaluation": {"kind": "image_list", "list": str(image_list)}, "batch_size": 4},
        "evaluation": {"backend": "mil-torch-per-sample"},
        "profiling": {"backend": "host-batch4", "runs": 3, "warmup": 1},
        "tracking": {"enabled": False},
    }


def _image_list(tmp_path: Path) -> Path:
    from coreml_bench.data.imagenet import foolbox_imagenet_sample

    path = tmp_path / "images.txt"
    items = foolbox_imagenet_sample()[:8]
    path.write_text("".join(f"{image} {label}\n" for image, label in items))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **PLUGIN_ENV}
    command = [sys.executable, "-m", "coreml_bench.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_plugin_entries_join_the_config_schema(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_config(_image_list(tmp_path))))
    checked = _cli("check-config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert "ok (3 model × experiment × trial jobs)" in checked.stdout

    generated = tmp_path / "generated"
    written = _cli("write-config", "--config-dir", str(generated), "--schema-dir", str(generated))
    assert written.returncode == 0, written.stderr
    schema = json.loads((generated / "config.schema.json").read_text())
    defs = schema["$defs"]
    assert {"ImageListData", "PalettizeUniform", "PruneL1Torch"} <= set(defs)
    assert "mil-torch-per-sample" in defs["EvaluationSettings"]["properties"]["backend"]["enum"]
    assert "host-batch4" in defs["ProfilingSettings"]["properties"]["backend"]["enum"]

    # Without the plugin the same file names each unknown entry.
    env = {k: v for k, v in os.environ.items() if k != "COREML_BENCH_PLUGINS"}
    plain = subprocess.run(
        [sys.executable, "-m", "coreml_bench.cli", "check-config", str(config)],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(ROOT / "workflow")},
        timeout=300,
    )
    assert plain.returncode == 1
    for unknown in ("tiny_cnn", "mil-torch-per-sample", "host-batch4", "image_list"):
        assert unknown in plain.stderr


def test_one_entry_of_each_kind_runs_through_snakemake(tmp_path: Path) -> None:
    from coreml_bench.mlpackage.program import read_package_weights

    workdir = tmp_path / "run"
    write_config(workdir, _config(_image_list(tmp_path)))
    run_snakemake(workdir, env=PLUGIN_ENV)

    table = pd.read_csv(workdir / "results/tables/summary.csv").set_index("Config")
    assert list(table.index) == ["Float16", "4 bit uniform", "L1 50% (torch)"]
    assert set(table["Model Name"]) == {"TinyCNN"}
    assert table.loc["4 bit uniform", "Optimization Algorithm"] == "Uniform Palettization"
    assert table.loc["L1 50% (torch)", "Optimization Algorithm"] == "L1 Pruning"
    assert set(table["Accuracy Backend"]) == {"mil-torch-per-sample"}
    assert all(b.startswith("host-batch4 (") for b in table["Latency Backend"])
    assert (table["Images"] == 8).all()
    assert float(table.loc["4 bit uniform", "Compression Ratio"]) > 2.5

    results = workdir / "results"
    evaluation = json.loads((results / "evaluation/tiny/uniform4/trial1.json").read_text())
    assert evaluation["dataset"]["kind"] == "image_list" and evaluation["device"] == "cpu"
    uniform = json.loads((results / "compressed/tiny/uniform4/trial1/manifest.json").read_text())
    assert uniform["op_counts"].get("constexpr_lut_to_dense", 0) >= 2
    check = json.loads((results / "checks/torch_settings/l1-50.json").read_text())
    assert check["checked_by_coremltools"] is False
    pruned = read_package_weights(results / "compressed/tiny/l1-50/trial1/model.mlpackage")
    largest = max(pruned, key=lambda w: w.weight.size)
    assert np.mean(largest.weight == 0) >= 0.5
    assert (results / "plots/pareto.png").stat().st_size > 0
