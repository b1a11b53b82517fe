"""Torch-side (training-time and calibration) compression settings and compressors.

Settings are validated by pydantic and by coremltools itself; a compressor fine-tuned by the
shared loop resumes exactly. Real data (Fashion-MNIST from Debian's dataset-fashion-mnist),
real fine-tuning (short). The workflow runs are in test_stage.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import fashion
import pytest
import torch
from coreml_bench.compress.torch_side import PalettizeDKM
from coreml_bench.config import ConfigError, validate_config
from coreml_bench.data import evaluation_loader, training_dataset
from coreml_bench.models import build_model
from coreml_bench.train.loop import train
from coreml_bench.train.recipe import TrainingRecipe, effective_recipe
from fashion import DATA, FINETUNE, torch_study, trained_cnn

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
        validate_config(torch_study([{"id": "x", "compression": compression}]))


def test_training_algorithms_need_training_data() -> None:
    raw = torch_study([{"id": "dkm", "compression": {"algorithm": "palettize_dkm"}}])
    raw["models"] = [{**trained_cnn(), "source": {"kind": "random"}}]
    raw["data"] = {k: v for k, v in DATA.items() if k != "training"}
    with pytest.raises(ConfigError, match=r"models\[0\] \('cnn'\): \['dkm'\] need a training"):
        validate_config(raw)


def test_coremltools_yaml_configs_are_accepted_or_rejected_before_any_job(tmp_path: Path) -> None:
    good = tmp_path / "dkm.yaml"
    good.write_text("global_config:\n  n_bits: 4\n  weight_threshold: 1024\n")
    params = PalettizeDKM(config_yaml=good)
    assert params.coremltools_config().global_config.n_bits == 4

    bad = tmp_path / "bad.yaml"
    bad.write_text("global_config:\n  n_bits: 4\n  cluster_dimension: 2\n")
    raw = torch_study(
        [{"id": "dkm", "compression": {"algorithm": "palettize_dkm", "config_yaml": str(bad)}}]
    )
    with pytest.raises(ConfigError, match=r"rejects config_yaml '.*bad.yaml'.*cluster_dimension"):
        validate_config(raw)
    raw["experiments"][0]["compression"]["config_yaml"] = str(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"config_yaml '.*missing.yaml' is not a file"):
        validate_config(raw)


def test_trials_default_to_three_for_training_time_rows_and_differ_in_seed_only() -> None:
    cfg = validate_config(
        torch_study(
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
    train_set = training_dataset(fashion.training(), fashion.preprocessing(), recipe)
    eval_loader = evaluation_loader(fashion.evaluation(), fashion.preprocessing())
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
