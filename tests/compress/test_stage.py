"""Torch-side compression through the workflow: training-time and calibration rows end to end,
epochs streamed to MLflow, a killed training job resumed.

Real data (Fashion-MNIST from Debian's dataset-fashion-mnist), real fine-tuning (short), real
conversions, real snakemake, a real MLflow sqlite store.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fashion
import pytest
import torch
from coreml_bench.mlpackage.program import read_package_weights
from fashion import torch_study
from helpers import ROOT, SNAKEMAKE, dry_run_jobs, run_snakemake, write_config


@pytest.fixture(scope="module", autouse=True)
def _fashion_mnist_installed() -> None:
    fashion.require_fashion_mnist()


EXPERIMENTS = [
    {"id": "fp16", "compression": {"algorithm": "none"}},
    {"id": "kmeans-2bit", "compression": {"algorithm": "palettize_kmeans", "n_bits": 2}},
    {"id": "dkm-2bit", "trials": 2, "compression": {"algorithm": "palettize_dkm", "n_bits": 2}},
    {
        "id": "skm-4bit",
        "compression": {"algorithm": "palettize_skm", "n_bits": 4, "num_calibration_samples": 16},
    },
    {
        "id": "prune-75-ft",
        "trials": 1,
        "compression": {
            "algorithm": "prune_magnitude_training",
            "target_sparsity": 0.75,
            "end_step": 8,
            "update_frequency": 4,
        },
    },
    {
        "id": "w8a8",
        "trials": 1,
        "compression": {"algorithm": "quantize_qat", "milestones": [0, 0, 12, 12]},
    },
]
EXPECTED_OPS = {
    "dkm-2bit": {"constexpr_lut_to_dense"},
    "skm-4bit": {"constexpr_lut_to_dense"},
    "prune-75-ft": {"constexpr_sparse_to_dense"},
    "w8a8": {"constexpr_blockwise_shift_scale", "quantize", "dequantize"},
}


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("fashion")
    write_config(workdir, torch_study(EXPERIMENTS))
    run_snakemake(workdir)
    return workdir


def test_training_time_rows_run_end_to_end(fashion_run: Path) -> None:
    with open(fashion_run / "results/tables/summary.csv") as handle:
        rows = {r["Optimization Algorithm"] + " " + r["Config"]: r for r in csv.DictReader(handle)}
    dkm = rows["Differentiable K-Means 2 bit"]
    assert dkm["Trials"] == "2" and " ± " in dkm["Accuracy"]
    assert dkm["Optimization Workflow"] == "Training Time"
    assert float(dkm["Compression Ratio"]) > 4
    assert rows["Linear Quantization (W8A8) W8A8"]["Accuracy Backend"] == "mil-torch"
    for experiment, ops in EXPECTED_OPS.items():
        for manifest_path in (fashion_run / "results/compressed/cnn" / experiment).glob(
            "*/manifest.json"
        ):
            manifest = json.loads(manifest_path.read_text())
            assert ops <= set(manifest["op_counts"]), (experiment, manifest["op_counts"])
            evaluation = json.loads(
                (
                    fashion_run
                    / "results/evaluation/cnn"
                    / experiment
                    / f"{manifest_path.parent.name}.json"
                ).read_text()
            )
            # The Core ML program, executed, scores what the finalized torch model scored
            # (fp16 activations move a few of the 200 images at most).
            assert evaluation["metrics"]["top1"] == pytest.approx(
                manifest["torch_accuracy"], abs=1.5
            )
    trials = [
        json.loads(
            (fashion_run / f"results/compressed/cnn/dkm-2bit/trial{t}/manifest.json").read_text()
        )
        for t in (1, 2)
    ]
    assert trials[1]["recipe"]["seed"] == trials[0]["recipe"]["seed"] + 1
    assert [len(t["history"]) for t in trials] == [2, 2]
    first_w = [
        w.weight
        for w in read_package_weights(
            fashion_run / "results/compressed/cnn/dkm-2bit/trial1/model.mlpackage"
        )
    ]
    second_w = [
        w.weight
        for w in read_package_weights(
            fashion_run / "results/compressed/cnn/dkm-2bit/trial2/model.mlpackage"
        )
    ]
    assert any(not (a == b).all() for a, b in zip(first_w, second_w, strict=True))


def test_the_epoch_history_reaches_mlflow_from_the_records_alone(fashion_run: Path) -> None:
    """Compute jobs never talk to MLflow: the fine-tuning history is in the manifest and the
    study's one local track job mirrors it as step metrics of the variant's run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{fashion_run}/results/mlflow/mlflow.db")
    experiment = client.get_experiment_by_name("fashion-torch")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    assert not [r for r in runs if r.data.tags.get("coreml_bench.role") == "training"]
    variant = next(
        r for r in runs if r.data.tags.get("coreml_bench.run_key") == "cnn/dkm-2bit/trial1"
    )
    assert [m.step for m in client.get_metric_history(variant.info.run_id, "val_top1")] == [1, 2]
    assert "torch_accuracy" in variant.data.metrics
    # What the UI's Dataset and Source columns read.
    assert [d.dataset.name for d in variant.inputs.dataset_inputs] == ["fashion_mnist:test"]
    assert variant.data.tags["mlflow.source.type"] == "LOCAL"
    assert variant.data.tags["code_fingerprint.compress"]


TABLES = {"aggregate": 1, "publish_tables": 1, "track": 1, "all": 1}


def test_evaluation_settings_retrain_nothing(fashion_run: Path) -> None:
    """data.limit is how the evaluation stage reads its set: no fine-tuning and not the
    baseline depend on it (they validate with their recipe's settings). SKM, which only
    calibrates, measures its torch accuracy with it: that job alone reruns."""
    config = torch_study(EXPERIMENTS)
    assert dry_run_jobs(fashion_run, config) == {}
    config["data"] = {**config["data"], "limit": 100}
    assert dry_run_jobs(fashion_run, config) == {
        "compress_torch": 1, "compile_program": 1, "evaluate": 7, "profile": 1, **TABLES
    }  # fmt: skip


def test_a_training_data_setting_retrains_the_baseline_and_everything_after(
    fashion_run: Path, tmp_path: Path
) -> None:
    config = torch_study(EXPERIMENTS)
    config["data"] = {**config["data"], "training": {**config["data"]["training"]}}
    config["data"]["training"]["root"] = str(tmp_path / "another-copy")
    assert dry_run_jobs(fashion_run, config) == {
        "train_baseline": 1, "convert": 1, "compress": 1, "compress_torch": 5,
        "compile_program": 7, "evaluate": 7, "profile": 7, **TABLES,
    }  # fmt: skip


def test_a_killed_training_job_resumes_when_rerun(fashion_run: Path, tmp_path: Path) -> None:
    """SIGKILL the whole snakemake process group mid-fine-tuning, rerun, and compare with the
    same experiment run straight through (the module's run: dkm-2bit, trial 1)."""
    dkm = next(e for e in EXPERIMENTS if e["id"] == "dkm-2bit")
    experiments = [{"id": "fp16", "compression": {"algorithm": "none"}}, {**dkm, "trials": 1}]
    config = torch_study(experiments, tracking={"enabled": False})
    killed = tmp_path / "killed"
    write_config(killed, config)
    target = "results/compressed/cnn/dkm-2bit/trial1/manifest.json"
    checkpoint = killed / "results/checkpoints/cnn/dkm-2bit/trial1/last.pt"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    process = subprocess.Popen(
        [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(killed),
         "--configfile", str(killed / "config.yaml"), "--cores", "2", target],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if checkpoint.is_file() and torch.load(checkpoint, weights_only=False)["epoch"] >= 0:
                break
            time.sleep(0.2)
        assert process.poll() is None, "the job finished before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert not (killed / target).exists()
    # A killed snakemake leaves its lock and incomplete markers: what a user clears too.
    run_snakemake(killed, "--unlock")
    run_snakemake(killed, "--rerun-incomplete", target)
    resumed_manifest = json.loads((killed / target).read_text())
    assert resumed_manifest["resumed_from_epoch"] >= 1
    weights = [
        read_package_weights(d / "results/compressed/cnn/dkm-2bit/trial1/model.mlpackage")
        for d in (killed, fashion_run)
    ]
    for a, b in zip(*weights, strict=True):
        assert (a.weight == b.weight).all(), a.op_name
