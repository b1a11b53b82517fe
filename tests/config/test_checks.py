"""Checks across config sections: what a model's task means for its data and experiments."""

from __future__ import annotations

import pytest
from coreml_bench.config import ConfigError, validate_config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({}, "is a detector: data.evaluation must be one of kinds"),
        ({"evaluation_data": {"kind": "deepforest_sample"}, "source": {"kind": "train"}},
         "kind 'train' trains classifiers"),
        ({"evaluation_data": {"kind": "deepforest_sample"}, "experiments": "dkm"},
         "training-time experiments ['dkm'] cannot run"),
    ],
)  # fmt: skip
def test_detector_config_mistakes_are_named(change: dict, message: str) -> None:
    model = {"id": "cn", "architecture": "centernet_resnet34", "source": {"kind": "random"}}
    model.update({k: v for k, v in change.items() if k != "experiments"})
    experiments = [{"id": "fp16", "compression": {"algorithm": "none"}}]
    if change.get("experiments") == "dkm":
        experiments.append({"id": "dkm", "compression": {"algorithm": "palettize_dkm"}})
    raw = {"models": [model], "experiments": experiments}
    raw["data"] = {"training": {"kind": "fashion_mnist"}}
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_config(raw)
