"""The resumable training loop on real Fashion-MNIST (real data, real torch).

Needs Debian's ``dataset-fashion-mnist`` (``.ci/run`` installs it).
"""

from __future__ import annotations

from pathlib import Path

import fashion
import pytest
import torch
from coreml_bench.data import evaluation_loader, training_dataset
from coreml_bench.models import build_model
from coreml_bench.train.loop import TrainingDivergedError, train
from coreml_bench.train.recipe import TrainingRecipe


@pytest.fixture(scope="module", autouse=True)
def _fashion_mnist_installed() -> None:
    fashion.require_fashion_mnist()


def _train_set(recipe: TrainingRecipe) -> object:
    return training_dataset(fashion.training(), fashion.preprocessing(), recipe)


def _eval_loader() -> object:
    return evaluation_loader(fashion.evaluation(), fashion.preprocessing())


def _run(recipe: TrainingRecipe, checkpoints: Path, **kwargs: object) -> tuple[dict, dict]:
    torch.manual_seed(recipe.seed)
    model = build_model("fashion_cnn", 10)
    result = train(
        model,
        recipe=recipe,
        train_set=_train_set(recipe),
        eval_loader=_eval_loader(),
        checkpoint_dir=checkpoints,
        progress=False,
        **kwargs,
    )
    return model.state_dict(), result


def test_training_learns_and_a_killed_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    recipe = fashion.short_recipe(lr_warmup_epochs=1, label_smoothing=0.1)
    straight, result = _run(recipe, tmp_path / "straight")
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    assert result["history"][-1]["val_top1"] > 30  # 10 classes: chance is 10 %
    assert result["history"][0]["lr"] == pytest.approx(0.05 * 0.01)  # warm-up start factor

    def kill_after_first_epoch(epoch: int, _metrics: dict) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(recipe, tmp_path / "killed", on_epoch_end=kill_after_first_epoch)
    resumed, result = _run(recipe, tmp_path / "killed")
    assert result["resumed_from_epoch"] == 1
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name

    # Another seed changes the data order and so the weights; another recipe never resumes.
    other, _ = _run(
        fashion.short_recipe(lr_warmup_epochs=1, label_smoothing=0.1, seed=1), tmp_path / "s1"
    )
    assert not torch.equal(other["0.weight"], straight["0.weight"])
    _, result = _run(fashion.short_recipe(lr=0.02), tmp_path / "killed")
    assert result["resumed_from_epoch"] == 0


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    def poison(epoch: int, _metrics: dict, model: torch.nn.Module) -> None:
        with torch.no_grad():
            model[0].weight.fill_(float("nan"))

    torch.manual_seed(0)
    model = build_model("fashion_cnn", 10)
    checkpoint = tmp_path / "last.pt"
    recipe = fashion.short_recipe()
    with pytest.raises(TrainingDivergedError, match=r"loss is nan at epoch 2, step 1"):
        train(
            model,
            recipe=recipe,
            train_set=_train_set(recipe),
            eval_loader=_eval_loader(),
            checkpoint_dir=tmp_path,
            on_epoch_end=lambda epoch, metrics: poison(epoch, metrics, model),
            progress=False,
        )
    state = torch.load(checkpoint, weights_only=False)
    assert state["epoch"] == 0  # epoch 1's checkpoint, untouched by the NaN epoch
    assert torch.isfinite(state["model"]["0.weight"]).all()
