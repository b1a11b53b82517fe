"""Checks across config sections: what a model's task means for its data and experiments."""

from __future__ import annotations

import pytest
from coreml_bench.config import ConfigError, validate_config

FLIP = {"augmentation": "horizontal_flip"}
FOREST = {"kind": "deepforest_sample"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({}, "data.evaluation (set models[0].evaluation_data): kind 'foolbox_imagenet_sample' "
             "is classification data but model 'cn' (centernet_resnet34) is a detection model"),
        ({"evaluation_data": FOREST, "source": {"kind": "train", "recipe": FLIP}},
         "data.training (models[0].training_data is not set): kind 'fashion_mnist' is "
         "classification data but model 'cn'"),
        ({"evaluation_data": FOREST, "experiments": "dkm"},
         "data.training (models[0].training_data is not set): kind 'fashion_mnist' is "
         "classification data"),
        ({"evaluation_data": FOREST, "training_data": FOREST, "experiments": "dkm"},
         "experiments[1] on 'cn': the fine-tuning recipe (models[0].finetune, then "
         "experiments[1].compression.recipe, over the defaults).augmentation: 'pad_crop_flip' "
         "is for classifiers"),
        ({"evaluation_data": FOREST, "training_data": FOREST,
          "source": {"kind": "train", "recipe": {"augmentation": "random_resized_crop_flip"}}},
         "models[0].source.recipe.augmentation: 'random_resized_crop_flip' is for classifiers"),
        ({"evaluation_data": FOREST, "training_data": FOREST, "experiments": "skm"},
         "'palettize_skm' calibrates with a classification loss"),
        ({"evaluation_data": FOREST, "no_training": True, "experiments": "dkm"},
         "models[0] ('cn'): ['dkm'] need a training split"),
        ({"evaluation_data": {"kind": "coco", "images": ".", "annotations": "a.json"},
          "num_classes": 3, "training_data": FOREST, "source": {"kind": "train", "recipe": FLIP}},
         "models[0].training_data: kind 'deepforest_sample' has 1 classes but model 'cn' "
         "predicts num_classes=3"),
    ],
)  # fmt: skip
def test_detector_config_mistakes_are_named(change: dict, message: str) -> None:
    model = {"id": "cn", "architecture": "centernet_resnet34", "source": {"kind": "random"}}
    model.update({k: v for k, v in change.items() if k not in ("experiments", "no_training")})
    experiments = [{"id": "fp16", "compression": {"algorithm": "none"}}]
    if change.get("experiments") == "dkm":
        experiments.append({"id": "dkm", "compression": {"algorithm": "palettize_dkm"}})
    if change.get("experiments") == "skm":
        experiments.append({"id": "skm", "compression": {"algorithm": "palettize_skm"}})
    raw = {"models": [model], "experiments": experiments}
    if not change.get("no_training"):
        raw["data"] = {"training": {"kind": "fashion_mnist"}}
    with pytest.raises(ConfigError) as error:
        validate_config(raw)
    assert message in str(error.value)


def test_a_detector_trains_from_a_backbone_on_detection_data() -> None:
    model = {
        "id": "cn",
        "architecture": "centernet_resnet34",
        "num_classes": 1,
        "source": {
            "kind": "train",
            "recipe": FLIP,
            "init": {"kind": "torchvision", "weights": "ResNet34_Weights.IMAGENET1K_V1"},
        },
        "evaluation_data": FOREST,
        "training_data": FOREST,
        "finetune": FLIP,
    }
    experiments = [
        {"id": "fp16", "compression": {"algorithm": "none"}},
        {"id": "dkm", "compression": {"algorithm": "palettize_dkm", "n_bits": 4}},
    ]
    cfg = validate_config({"models": [model], "experiments": experiments})
    assert cfg.training_params("cn") == {"kind": "deepforest_sample", "wheel_dir": ".venv/fixtures"}


def test_fine_tuning_an_imagenet_classifier_on_fashion_mnist_is_refused() -> None:
    raw = {
        "models": [
            {"id": "r18", "architecture": "resnet18", "source": {"kind": "random"}},
        ],
        "experiments": [{"id": "prune", "compression": {"algorithm": "prune_magnitude_training"}}],
        "data": {"training": {"kind": "fashion_mnist"}},
    }
    with pytest.raises(
        ConfigError,
        match=r"data.training \(models\[0\].training_data is not set\): kind 'fashion_mnist' "
        r"has 10 classes but model 'r18' predicts num_classes=1000",
    ):
        validate_config(raw)
