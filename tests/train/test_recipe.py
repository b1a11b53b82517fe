"""The training recipe as the config validates it: every bad field named."""

from __future__ import annotations

import re

import pytest
from coreml_bench.config import ConfigError, validate_config


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
