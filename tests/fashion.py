"""Fashion-MNIST settings shared by the data, training and torch-side compression tests.

Needs Debian's ``dataset-fashion-mnist`` (``.ci/run`` installs it). The dicts are config
sections as a user writes them; the typed objects are what the stage functions take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from coreml_bench.data import DATA_KINDS, DataSelection, Preprocessing
from coreml_bench.train.recipe import TrainingRecipe

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


def require_fashion_mnist() -> None:
    if not (FASHION_ROOT / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"{FASHION_ROOT} missing: apt-get install dataset-fashion-mnist")


def short_recipe(**overrides: object) -> TrainingRecipe:
    """Two short epochs on 1024 images: the training-loop and baseline tests' recipe."""
    # Validation on the 200 images the evaluation stage scores (DATA's limit).
    base = {"epochs": 2, "batch_size": 64, "lr": 0.05, "train_limit": 1024, "validation_limit": 200}
    return TrainingRecipe.model_validate({**base, "max_steps_per_epoch": 6, **overrides})


def preprocessing() -> Preprocessing:
    return Preprocessing.model_validate(PREPROCESSING)


def evaluation(data: dict[str, Any] = DATA) -> DataSelection:
    """``data``'s evaluation set as an evaluation job reads it."""
    source = DATA_KINDS[data["evaluation"]["kind"]].params.model_validate(data["evaluation"])
    return DataSelection(source=source, batch_size=data["batch_size"], limit=data.get("limit"))


def training(data: dict[str, Any] = DATA) -> Any:
    """``data``'s training split as a training job reads it."""
    params = DATA_KINDS[data["training"]["kind"]].training_params
    assert params is not None
    return params.model_validate(data["training"])


# ------------------------------------------- the torch-side compression study (tests/compress)

TRAIN_RECIPE = {
    "epochs": 1,
    "batch_size": 64,
    "train_limit": 2048,
    "max_steps_per_epoch": 20,
    "validation_limit": 200,
}
FINETUNE = {
    "epochs": 2,
    "batch_size": 64,
    "lr": 0.01,
    "train_limit": 2048,
    "max_steps_per_epoch": 8,
    "validation_limit": 200,
}


def trained_cnn(**extra: object) -> dict:
    """A fashion_cnn the workflow trains (briefly), with a short fine-tuning recipe."""
    return {
        "id": "cnn",
        "architecture": "fashion_cnn",
        "num_classes": 10,
        # Copies: a test that edits its config must not change every later test's.
        "source": {"kind": "train", "recipe": dict(TRAIN_RECIPE)},
        "finetune": dict(FINETUNE),
        **extra,
    }


def torch_study(experiments: list[dict], **extra: object) -> dict:
    return {
        "study": "fashion-torch",
        "models": [trained_cnn()],
        "experiments": experiments,
        "data": DATA,
        "profiling": {"runs": 3, "warmup": 1},
        **extra,
    }
