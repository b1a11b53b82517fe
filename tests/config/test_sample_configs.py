"""The offline proofs of the fine-tuning paths, run through the real workflow: CenterNet on
the deepforest sample (config/detection-sample.yaml) and EfficientNet-Lite0 on an
ImageNet-layout folder (config/imagenet-sample.yaml), each shortened for the test suite (fewer
epochs, one training-time row). The reference gate runs on the CenterNet study, whose model
has published rows."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import ROOT, run_snakemake, write_config


def _sample(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


def test_centernet_trains_fine_tunes_converts_and_scores_on_the_deepforest_sample(
    tmp_path: Path,
) -> None:
    config = _sample("detection-sample.yaml")
    model = config["models"][0]
    model["preprocessing"].update(resize=128, crop_size=128)
    model["source"]["recipe"]["epochs"] = 2
    for data in ("evaluation_data", "training_data"):
        model[data]["wheel_dir"] = str(ROOT / ".venv" / "fixtures")
    config["experiments"] = [e for e in config["experiments"] if e["id"] in ("fp16", "prune-50")]
    config["profiling"] = {"runs": 1, "warmup": 0}
    write_config(tmp_path, config)
    run_snakemake(tmp_path)
    results = tmp_path / "results"
    baseline = json.loads((results / "weights" / "centernet.json").read_text())
    assert [h["epoch"] for h in baseline["history"]] == [1, 2]
    assert baseline["history"][-1]["train_loss"] < baseline["history"][0]["train_loss"]
    pruned = json.loads(
        (results / "compressed/centernet/prune-50/trial1/manifest.json").read_text()
    )
    assert pruned["torch_metric"] == "val_map" and "val_map" in pruned["history"][0]
    assert pruned["op_counts"].get("constexpr_sparse_to_dense", 0) > 0
    summary = pd.read_csv(results / "tables" / "summary.csv")
    assert set(summary["Config"]) == {"Float16", "Unstructured Sparsity 50%"}
    assert set(summary["Metric"]) == {"mAP@[.5:.95] (%)"}
    # The gate: CenterNet's published rows, none comparable on two aerial images.
    gate = pd.read_csv(results / "reference" / "gate.csv")
    assert set(gate["model"]) == {"CenterNet (ResNet34 backbone)"}
    assert "pass" not in set(gate["accuracy_status"].dropna())
    unmeasured = gate[gate["accuracy_status"] == "unmeasured"]["reason"]
    assert unmeasured.str.contains("deepforest_sample (2 images)", regex=False).all()
    report = (results / "reference" / "gate.md").read_text()
    assert "## accuracy-and-performance: Palettization" in report
    with sqlite3.connect(results / "mlflow" / "mlflow.db") as db:
        roles = {v for (v,) in db.execute("select value from tags where key='coreml_bench.role'")}
    assert "reference_gate" in roles
    logged = list((results / "mlflow" / "artifacts").rglob("reference_gate.json"))
    assert len(logged) == 1  # the gate as an MLflow table (mlflow.log_table's format)
    table = json.loads(logged[0].read_text())
    assert "status" in table["columns"] and len(table["data"]) == len(gate)
    refused = run_snakemake(tmp_path, "check", check=False)
    assert refused.returncode != 0
    assert "reference gate failed" in refused.stdout + refused.stderr
    assert (results / "reference" / "gate.md").read_text() == report  # kept, not deleted


# The ImageNet-folder training kind is covered in the default suite by
# tests/train/test_tasks.py (the loop on the same folder) and tests/config/test_paper.py (the
# plan); this whole-workflow run adds a minute of conversions.
@pytest.mark.slow
def test_efficientnet_fine_tunes_on_an_imagenet_layout_folder(tmp_path: Path) -> None:
    subprocess.run(
        [str(Path(sys.executable).with_name("coreml-bench")), "make-imagenet-sample"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    config = _sample("imagenet-sample.yaml")
    config["experiments"] = [e for e in config["experiments"] if e["id"] in ("fp16", "prune-50")]
    config["profiling"] = {"runs": 1, "warmup": 0}
    config["tracking"] = {"enabled": False}
    write_config(tmp_path, config)
    run_snakemake(tmp_path)
    results = tmp_path / "results"
    evaluation = json.loads(
        (results / "evaluation/efficientnet_lite0/prune-50/trial1.json").read_text()
    )
    assert evaluation["dataset"]["kind"] == "imagenet_folder"
    assert evaluation["metrics"]["n_images"] == 20
    pruned = json.loads(
        (results / "compressed/efficientnet_lite0/prune-50/trial1/manifest.json").read_text()
    )
    assert pruned["torch_metric"] == "val_top1" and len(pruned["history"]) == 1
    assert not (results / "reference").exists()  # EfficientNet-Lite0 has no published rows
