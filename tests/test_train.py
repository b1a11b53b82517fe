"""Fashion-MNIST data, the training recipe and the resumable training loop (real data, real torch).

Needs Debian's ``dataset-fashion-mnist`` (``.ci/run`` installs it).
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_snakemake, write_config
from coreml_bench.config import ConfigError, check_local_paths, validate_config
from coreml_bench.data import DataError, evaluation_loader, fashion_mnist, read_idx
from coreml_bench.models import build_model
from coreml_bench.train import TrainingDivergedError, TrainingRecipe, train, training_dataset

FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")
PREPROCESSING = {
    "resize": 28,
    "crop_size": 28,
    "mean": [0.286],
    "std": [0.353],
    "interpolation": "bilinear",
}
DATA = {
    "evaluation": {"kind": "fashion_mnist", "root": str(FASHION_ROOT), "split": "test"},
    "training": {"kind": "fashion_mnist", "root": str(FASHION_ROOT), "split": "train"},
    "batch_size": 200,
    "limit": 200,
}


@pytest.fixture(scope="module", autouse=True)
def _fashion_mnist_installed() -> None:
    if not (FASHION_ROOT / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"{FASHION_ROOT} missing: apt-get install dataset-fashion-mnist")


def test_fashion_mnist_splits_are_real_images() -> None:
    images, labels = fashion_mnist(FASHION_ROOT, "train")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert sorted(np.unique(labels).tolist()) == list(range(10))
    assert np.bincount(labels).tolist() == [6000] * 10
    test_images, _ = fashion_mnist(FASHION_ROOT, "test")
    assert test_images.shape == (10000, 28, 28)
    assert 0.25 < images.mean() / 255 < 0.32  # the published mean is 0.286


def test_idx_reader_rejects_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "ok-idx1-ubyte.gz"
    with gzip.open(good, "wb") as handle:
        handle.write(bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([7, 8, 9]))
    assert read_idx(good).tolist() == [7, 8, 9]
    short = tmp_path / "short-idx1-ubyte"
    short.write_bytes(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + bytes([1]))
    with pytest.raises(DataError, match=r"header says \(5,\) but holds 1 bytes"):
        read_idx(short)
    with pytest.raises(DataError, match="not an unsigned-byte IDX file"):
        (tmp_path / "float-idx").write_bytes(bytes([0, 0, 0x0D, 1, 0, 0, 0, 0]))
        read_idx(tmp_path / "float-idx")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist(tmp_path, "train")


def test_evaluation_loader_normalises_grey_images() -> None:
    loader = evaluation_loader(DATA, PREPROCESSING)
    images, labels = next(iter(loader))
    assert images.shape == (200, 1, 28, 28) and labels.shape == (200,)
    assert abs(float(images.mean())) < 0.3 and 0.7 < float(images.std()) < 1.3


def _recipe(**overrides: object) -> TrainingRecipe:
    base = {"epochs": 2, "batch_size": 64, "lr": 0.05, "train_limit": 1024}
    return TrainingRecipe.model_validate({**base, "max_steps_per_epoch": 6, **overrides})


def _run(recipe: TrainingRecipe, checkpoints: Path, **kwargs: object) -> tuple[dict, dict]:
    torch.manual_seed(recipe.seed)
    model = build_model("fashion_cnn", 10)
    result = train(
        model,
        recipe=recipe,
        train_set=training_dataset(DATA, PREPROCESSING, recipe),
        eval_loader=evaluation_loader(DATA, PREPROCESSING),
        checkpoint_dir=checkpoints,
        progress=False,
        **kwargs,
    )
    return model.state_dict(), result


def test_training_learns_and_a_killed_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    recipe = _recipe(lr_warmup_epochs=1, label_smoothing=0.1)
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
    other, _ = _run(_recipe(lr_warmup_epochs=1, label_smoothing=0.1, seed=1), tmp_path / "s1")
    assert not torch.equal(other["0.weight"], straight["0.weight"])
    _, result = _run(_recipe(lr=0.02), tmp_path / "killed")
    assert result["resumed_from_epoch"] == 0


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    def poison(epoch: int, _metrics: dict, model: torch.nn.Module) -> None:
        with torch.no_grad():
            model[0].weight.fill_(float("nan"))

    torch.manual_seed(0)
    model = build_model("fashion_cnn", 10)
    checkpoint = tmp_path / "last.pt"
    recipe = _recipe()
    with pytest.raises(TrainingDivergedError, match=r"loss is nan at epoch 2, step 1"):
        train(
            model,
            recipe=recipe,
            train_set=training_dataset(DATA, PREPROCESSING, recipe),
            eval_loader=evaluation_loader(DATA, PREPROCESSING),
            checkpoint_dir=tmp_path,
            on_epoch_end=lambda epoch, metrics: poison(epoch, metrics, model),
            progress=False,
        )
    state = torch.load(checkpoint, weights_only=False)
    assert state["epoch"] == 0  # epoch 1's checkpoint, untouched by the NaN epoch
    assert torch.isfinite(state["model"]["0.weight"]).all()


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ({"epochs": -1}, "models[0].source.train.recipe.epochs: Input should be greater than"),
        ({"optimizer": "adam"}, "models[0].source.train.recipe.optimizer: Input should be 'sgd'"),
        ({"epochs": 2, "lr_warmup_epochs": 2}, "lr_warmup_epochs=2 must be < epochs=2"),
        ({"learning_rate": 0.1}, "models[0].source.train.recipe.learning_rate: Extra inputs"),
    ],
)
def test_bad_recipes_are_rejected_with_the_field(recipe: dict, message: str) -> None:
    raw = {
        "models": [
            {
                "id": "cnn",
                "architecture": "fashion_cnn",
                "num_classes": 10,
                "source": {"kind": "train", "recipe": recipe},
            }
        ],
        "data": {"training": {"kind": "fashion_mnist"}},
    }
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(raw)


def test_training_source_needs_training_data_and_the_files(tmp_path: Path) -> None:
    model = {"id": "cnn", "architecture": "fashion_cnn", "source": {"kind": "train"}}
    with pytest.raises(ConfigError, match=r"models\[0\].source: kind 'train' needs data.training"):
        validate_config({"models": [model]})
    cfg = validate_config(
        {"models": [model], "data": {"training": {"kind": "fashion_mnist", "root": str(tmp_path)}}}
    )
    with pytest.raises(ConfigError, match=r"data.training.root: .* lacks \['train-images"):
        check_local_paths(cfg)
    with pytest.raises(ConfigError, match="preprocessing has 3 mean/std values but architecture"):
        validate_config(
            {
                "models": [
                    {
                        **model,
                        "preprocessing": {
                            "resize": 28,
                            "crop_size": 28,
                            "mean": [0.5, 0.5, 0.5],
                            "std": [0.5, 0.5, 0.5],
                        },
                    }
                ],
                "data": {"training": {"kind": "fashion_mnist"}},
            }
        )


def test_workflow_trains_the_baseline_then_compresses_it(tmp_path: Path) -> None:
    """Real snakemake: train (tiny) → convert → k-means → evaluate → profile → table."""
    config = {
        "study": "fashion",
        "models": [
            {
                "id": "cnn",
                "architecture": "fashion_cnn",
                "num_classes": 10,
                "source": {"kind": "train", "recipe": _recipe().model_dump(mode="json")},
            }
        ],
        "experiments": [
            {"id": "fp16", "compression": {"algorithm": "none"}},
            {"id": "kmeans-4bit", "compression": {"algorithm": "palettize_kmeans", "n_bits": 4}},
        ],
        "data": DATA,
        "profiling": {"runs": 3, "warmup": 1},
        "tracking": {"enabled": False},
    }
    write_config(tmp_path, config)
    run_snakemake(tmp_path)
    manifest = json.loads((tmp_path / "results/weights/cnn.json").read_text())
    assert manifest["stage"] == "train" and manifest["resumed_from_epoch"] == 0
    assert len(manifest["history"]) == 2
    with open(tmp_path / "results/tables/summary.csv") as handle:
        rows = {r["Config"]: r for r in csv.DictReader(handle)}
    assert float(rows["Float16"]["Accuracy"]) == pytest.approx(
        manifest["history"][-1]["val_top1"], abs=1.0
    )  # the fp16 package scores what the fp32 model scored on the same 200 images
    assert float(rows["4 bit"]["Compression Ratio"]) > 3

    # The weights go missing: asked for again, the job finds the finished run's checkpoint
    # and only re-saves (Snakemake alone would not rerun it: everything downstream exists).
    (tmp_path / "results/weights/cnn.pth").unlink()
    run_snakemake(tmp_path, "results/weights/cnn.pth")
    manifest = json.loads((tmp_path / "results/weights/cnn.json").read_text())
    assert manifest["resumed_from_epoch"] == 2
