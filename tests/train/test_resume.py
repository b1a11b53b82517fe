"""A checkpoint is resumed only by the exact job that wrote it: recipe, algorithm settings,
starting weights, data. (Before: a DKM experiment changed from 2 to 4 bits resumed the 2-bit
run's checkpoint and was reported as 4-bit.)"""

from __future__ import annotations

from pathlib import Path

import fashion
import pytest
import torch
from coreml_bench.compress import ALGORITHMS
from coreml_bench.compress.torch_stage import torch_job_fingerprint
from coreml_bench.data import evaluation_loader, training_dataset
from coreml_bench.models import ModelSpec, build_model
from coreml_bench.train.loop import train
from coreml_bench.train.recipe import TrainingRecipe


@pytest.fixture(scope="module", autouse=True)
def _fashion_mnist_installed() -> None:
    fashion.require_fashion_mnist()


RECIPE = TrainingRecipe(epochs=2, batch_size=64, train_limit=512, max_steps_per_epoch=4)
MODEL = ModelSpec(
    id="cnn",
    architecture="fashion_cnn",
    source={"kind": "random"},
    num_classes=10,
    preprocessing=fashion.preprocessing(),
    in_channels=1,
    task="classification",
)


def _dkm(n_bits: int) -> object:
    return ALGORITHMS["palettize_dkm"].params.model_validate(
        {"algorithm": "palettize_dkm", "n_bits": n_bits}, context={"check_with_coremltools": False}
    )


def _fingerprint(weights: Path, n_bits: int = 2, recipe: TrainingRecipe = RECIPE, **data) -> str:
    evaluation = fashion.evaluation({**fashion.DATA, **data})
    return torch_job_fingerprint(
        params=_dkm(n_bits),
        recipe=recipe,
        model=MODEL,
        evaluation=evaluation,
        training=fashion.training(),
        weights=weights,
    )


def test_the_job_fingerprint_covers_settings_weights_recipe_and_data(tmp_path: Path) -> None:
    weights = tmp_path / "a.pth"
    torch.save(build_model("fashion_cnn", 10).state_dict(), weights)
    retrained = tmp_path / "b.pth"
    torch.manual_seed(1)
    torch.save(build_model("fashion_cnn", 10).state_dict(), retrained)
    same = _fingerprint(weights)
    assert _fingerprint(weights) == same
    assert _fingerprint(weights, n_bits=4) != same
    assert _fingerprint(retrained) != same
    assert _fingerprint(weights, recipe=RECIPE.model_copy(update={"lr": 0.01})) != same
    assert _fingerprint(weights, limit=100) != same


def test_a_checkpoint_of_another_job_is_not_resumed(tmp_path: Path) -> None:
    def run(fingerprint: str, stop_after: int | None = None) -> dict:
        torch.manual_seed(0)
        model = build_model("fashion_cnn", 10)

        def stop(epoch: int, _metrics: dict) -> None:
            if epoch == stop_after:
                raise KeyboardInterrupt

        return train(
            model,
            recipe=RECIPE,
            train_set=training_dataset(fashion.training(), fashion.preprocessing(), RECIPE),
            eval_loader=evaluation_loader(fashion.evaluation(), fashion.preprocessing()),
            checkpoint_dir=tmp_path,
            on_epoch_end=stop,
            progress=False,
            fingerprint=fingerprint,
        )

    with pytest.raises(KeyboardInterrupt):
        run("two-bit-job", stop_after=1)
    assert run("four-bit-job")["resumed_from_epoch"] == 0
    with pytest.raises(KeyboardInterrupt):
        run("two-bit-job", stop_after=1)
    assert run("two-bit-job")["resumed_from_epoch"] == 1


def test_a_finished_fine_tuning_job_checkpoints_under_its_own_fingerprint(tmp_path: Path) -> None:
    from coreml_bench.compress.torch_stage import compress_with_torch
    from coreml_bench.convert import ConversionSettings

    weights = tmp_path / "cnn.pth"
    torch.manual_seed(0)
    torch.save(build_model("fashion_cnn", 10).state_dict(), weights)
    checkpoints = tmp_path / "checkpoints"
    params = ALGORITHMS["prune_magnitude_training"].params.model_validate(
        {"algorithm": "prune_magnitude_training", "target_sparsity": 0.5, "end_step": 4},
        context={"check_with_coremltools": False},
    )
    recipe = TrainingRecipe(epochs=1, batch_size=64, train_limit=512, max_steps_per_epoch=4)
    record = compress_with_torch(
        params=params,
        recipe=recipe,
        model=MODEL,
        evaluation=fashion.evaluation(),
        training=fashion.training(),
        conversion=ConversionSettings(),
        weights=weights,
        baseline_manifest={"weight_bytes": 1, "package_bytes": 1},
        package=tmp_path / "model.mlpackage",
        manifest=tmp_path / "manifest.json",
        checkpoint_dir=checkpoints,
        context={"model": "cnn", "experiment": "prune", "trial": 1},
        progress=False,
    )
    assert record["training_fingerprint"] == torch_job_fingerprint(
        params=params,
        recipe=recipe,
        model=MODEL,
        evaluation=fashion.evaluation(),
        training=fashion.training(),
        weights=weights,
    )
    # Only this exact job may resume from (or, finished, re-save) what it left behind.
    state = torch.load(checkpoints / "last.pt", weights_only=False)
    assert state["fingerprint"] == record["training_fingerprint"]
