"""Training-time and calibration compression (coremltools.optimize.torch) through the workflow.

Real data (Fashion-MNIST from Debian's dataset-fashion-mnist), real fine-tuning (short), real
conversions, real snakemake, a real MLflow sqlite store.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT, SNAKEMAKE, run_snakemake, write_config
from coreml_bench.compress_torch import PalettizeDKM, effective_recipe
from coreml_bench.config import ConfigError, validate_config
from coreml_bench.models import build_model
from coreml_bench.train import TrainingRecipe, train, training_dataset
from coreml_bench.weights_roundtrip import read_package_weights
from test_train import DATA, PREPROCESSING

TRAIN_RECIPE = {"epochs": 1, "batch_size": 64, "train_limit": 2048, "max_steps_per_epoch": 20}
FINETUNE = {
    "epochs": 2,
    "batch_size": 64,
    "lr": 0.01,
    "train_limit": 2048,
    "max_steps_per_epoch": 8,
}


def _model(**extra: object) -> dict:
    return {
        "id": "cnn",
        "architecture": "fashion_cnn",
        "num_classes": 10,
        "source": {"kind": "train", "recipe": TRAIN_RECIPE},
        "finetune": FINETUNE,
        **extra,
    }


def _config(experiments: list[dict], **extra: object) -> dict:
    return {
        "study": "fashion-torch",
        "models": [_model()],
        "experiments": experiments,
        "data": DATA,
        "profiling": {"runs": 3, "warmup": 1},
        **extra,
    }


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("compression", "message"),
    [
        (
            {"algorithm": "palettize_dkm", "n_bits": 5},
            "experiments[0].compression.palettize_dkm.n_bits: Input should be 1, 2, 3, 4, 6 or 8",
        ),
        (
            {"algorithm": "prune_magnitude_training", "target_sparsity": 1.5},
            "experiments[0].compression.prune_magnitude_training.target_sparsity: "
            "Input should be less than 1",
        ),
        (
            {"algorithm": "palettize_dkm", "recipe": {"epochs": -1}},
            "experiments[0].compression.palettize_dkm.recipe.epochs: Input should be greater",
        ),
        (
            {"algorithm": "quantize_qat", "recipe": {"optimizer": "adam"}},
            "experiments[0].compression.quantize_qat.recipe.optimizer: Input should be 'sgd'",
        ),
        (
            {"algorithm": "palettize_skm", "num_calibration_samples": 0},
            "experiments[0].compression.palettize_skm.num_calibration_samples",
        ),
        (
            {"algorithm": "palettize_dkm", "module_overrides": {"3": {"n_bitz": 4}}},
            "coremltools' DKMPalettizerConfig rejects it",
        ),
    ],
)
def test_bad_training_settings_are_rejected_with_the_field(compression: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(_config([{"id": "x", "compression": compression}]))


def test_training_algorithms_need_training_data() -> None:
    raw = _config([{"id": "dkm", "compression": {"algorithm": "palettize_dkm"}}])
    raw["models"] = [{**_model(), "source": {"kind": "random"}}]
    raw["data"] = {k: v for k, v in DATA.items() if k != "training"}
    with pytest.raises(ConfigError, match=r"experiments\[0\].compression: 'palettize_dkm' needs"):
        validate_config(raw)


def test_coremltools_yaml_configs_are_accepted_or_rejected_before_any_job(tmp_path: Path) -> None:
    good = tmp_path / "dkm.yaml"
    good.write_text("global_config:\n  n_bits: 4\n  weight_threshold: 1024\n")
    params = PalettizeDKM(config_yaml=good)
    assert params.coremltools_config().global_config.n_bits == 4

    bad = tmp_path / "bad.yaml"
    bad.write_text("global_config:\n  n_bits: 4\n  cluster_dimension: 2\n")
    raw = _config(
        [{"id": "dkm", "compression": {"algorithm": "palettize_dkm", "config_yaml": str(bad)}}]
    )
    with pytest.raises(ConfigError, match=r"rejects config_yaml '.*bad.yaml'.*cluster_dimension"):
        validate_config(raw)
    raw["experiments"][0]["compression"]["config_yaml"] = str(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"config_yaml '.*missing.yaml' is not a file"):
        validate_config(raw)


def test_trials_default_to_three_for_training_time_rows_and_differ_in_seed_only() -> None:
    cfg = validate_config(
        _config(
            [
                {"id": "fp16", "compression": {"algorithm": "none"}},
                {
                    "id": "dkm",
                    "compression": {"algorithm": "palettize_dkm", "recipe": {"lr": 0.02}},
                },
                {"id": "skm", "compression": {"algorithm": "palettize_skm"}},
            ]
        )
    )
    assert [(e, t) for _m, e, t in cfg.variants()] == [
        ("fp16", 1), ("dkm", 1), ("dkm", 2), ("dkm", 3), ("skm", 1)
    ]  # fmt: skip
    first, third = cfg.finetune_recipe("cnn", "dkm", 1), cfg.finetune_recipe("cnn", "dkm", 3)
    assert first is not None and third is not None
    # The experiment's lr overrides the model's finetune lr; everything else comes from it.
    assert first["lr"] == 0.02 and first["max_steps_per_epoch"] == FINETUNE["max_steps_per_epoch"]
    assert third["seed"] == first["seed"] + 2
    assert {k: v for k, v in first.items() if k != "seed"} == {
        k: v for k, v in third.items() if k != "seed"
    }
    assert cfg.finetune_recipe("cnn", "skm", 1) is None
    assert effective_recipe(None, None, 1) == TrainingRecipe()


# ------------------------------------------------------------------- resume with a compressor


def test_killed_dkm_fine_tuning_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """The compressor's step counter is replayed on resume, so milestones fall where they did."""
    from coremltools.optimize.torch.palettization import DKMPalettizer

    recipe = TrainingRecipe.model_validate({**FINETUNE, "epochs": 2, "max_steps_per_epoch": 4})
    train_set = training_dataset(DATA, PREPROCESSING, recipe)
    from coreml_bench.data import evaluation_loader

    eval_loader = evaluation_loader(DATA, PREPROCESSING)
    # Palettization starts at step 2, before the kill after epoch 1 (4 steps): the resumed
    # run must restore the fake palettizers' clusters and bookkeeping, not only the weights.
    params = PalettizeDKM(n_bits=2, weight_threshold=1024, milestone=2)

    def run(checkpoints: Path, kill_after: int | None = None) -> dict:
        torch.manual_seed(0)
        model = build_model("fashion_cnn", 10).train()
        compressor = DKMPalettizer(model, params.coremltools_config())
        prepared = compressor.prepare()

        def maybe_kill(epoch: int, _metrics: dict) -> None:
            if epoch == kill_after:
                raise KeyboardInterrupt

        train(
            prepared,
            recipe=recipe,
            train_set=train_set,
            eval_loader=eval_loader,
            checkpoint_dir=checkpoints,
            on_epoch_end=maybe_kill,
            on_step=compressor.step,
            progress=False,
        )
        return compressor.finalize(prepared).state_dict()

    straight = run(tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", kill_after=1)
    resumed = run(tmp_path / "killed")
    assert straight.keys() == resumed.keys()
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name
    # Palettization really happened: 2-bit tensors hold at most 4 distinct values.
    assert len(torch.unique(straight["3.weight"])) <= 4


# ---------------------------------------------------------------------- real workflow runs

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
    write_config(workdir, _config(EXPERIMENTS))
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
            assert evaluation["metrics"]["top1"] == pytest.approx(manifest["torch_top1"], abs=1.5)
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


def test_epochs_are_streamed_to_mlflow_and_linked_from_the_variant_run(fashion_run: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{fashion_run}/results/mlflow/mlflow.db")
    experiment = client.get_experiment_by_name("fashion-torch")
    runs = client.search_runs([experiment.experiment_id])
    training = [r for r in runs if r.data.tags.get("coreml_bench.role") == "training"]
    # dkm ×2, prune, w8a8 fine-tune; skm calibrates without epochs.
    assert sorted(r.data.tags["coreml_bench.run_key"] for r in training) == [
        "cnn/dkm-2bit/trial1", "cnn/dkm-2bit/trial2", "cnn/prune-75-ft/trial1", "cnn/w8a8/trial1"
    ]  # fmt: skip
    for run in training:
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "val_top1")
        assert [m.step for m in history] == [1, 2]
    variant = next(
        r
        for r in runs
        if r.data.tags.get("coreml_bench.run_key") == "cnn/dkm-2bit/trial1"
        and r.data.tags.get("coreml_bench.role") != "training"
    )
    streamed = next(
        r for r in training if r.data.tags["coreml_bench.run_key"] == "cnn/dkm-2bit/trial1"
    )
    assert variant.data.tags["training_run_id"] == streamed.info.run_id
    assert [m.step for m in client.get_metric_history(variant.info.run_id, "val_top1")] == [1, 2]
    assert "torch_top1" in variant.data.metrics


def test_a_killed_training_job_resumes_when_rerun(tmp_path: Path) -> None:
    """SIGKILL the whole snakemake process group mid-fine-tuning, rerun, compare."""
    slow = {**FINETUNE, "epochs": 4, "max_steps_per_epoch": 12}
    experiments = [
        {"id": "fp16", "compression": {"algorithm": "none"}},
        {
            "id": "dkm",
            "trials": 1,
            "compression": {"algorithm": "palettize_dkm", "n_bits": 4, "recipe": slow},
        },
    ]
    config = _config(experiments, tracking={"enabled": False})
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    write_config(killed, config)
    write_config(straight, config)
    checkpoint = killed / "results/checkpoints/cnn/dkm/trial1/last.pt"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    process = subprocess.Popen(
        [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(killed),
         "--configfile", str(killed / "config.yaml"), "--cores", "2",
         "results/compressed/cnn/dkm/trial1/manifest.json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if checkpoint.is_file() and torch.load(checkpoint, weights_only=False)["epoch"] >= 0:
                break
            time.sleep(0.5)
        assert process.poll() is None, "the job finished before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert not (killed / "results/compressed/cnn/dkm/trial1/manifest.json").exists()
    # A killed snakemake leaves its lock and incomplete markers: what a user clears too.
    run_snakemake(killed, "--unlock")
    run_snakemake(killed, "--rerun-incomplete", "results/compressed/cnn/dkm/trial1/manifest.json")
    run_snakemake(straight, "results/compressed/cnn/dkm/trial1/manifest.json")
    resumed_manifest = json.loads(
        (killed / "results/compressed/cnn/dkm/trial1/manifest.json").read_text()
    )
    assert resumed_manifest["resumed_from_epoch"] >= 1
    weights = [
        read_package_weights(d / "results/compressed/cnn/dkm/trial1/model.mlpackage")
        for d in (killed, straight)
    ]
    for a, b in zip(*weights, strict=True):
        assert (a.weight == b.weight).all(), a.op_name
