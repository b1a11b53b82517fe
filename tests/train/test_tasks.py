"""Training-task bindings: the detection path on the real deepforest sample (targets from COCO
boxes, CenterNet's loss, mAP validation) and the classification path on an ImageNet-layout
folder made from the foolbox images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from coreml_bench.data import DataSelection, Preprocessing
from coreml_bench.data.imagenet import foolbox_imagenet_sample, write_imagenet_folder
from coreml_bench.data.kinds import DeepForestSampleData, ImageFolderData, ImageFolderTrainingData
from coreml_bench.models import ModelSpec, build_model
from coreml_bench.models.sources import RandomInitSource
from coreml_bench.train.loop import train
from coreml_bench.train.recipe import TrainingRecipe
from coreml_bench.train.tasks import bind_task
from helpers import ROOT

WHEELS = ROOT / ".venv" / "fixtures"
SIZE = 128  # the deepforest images are 400 × 400; a small input keeps CPU steps short


def _spec(architecture: str, num_classes: int, size: int) -> ModelSpec:
    return ModelSpec(
        id="m",
        architecture=architecture,
        source=RandomInitSource(),
        num_classes=num_classes,
        preprocessing=Preprocessing(
            resize=size, crop_size=size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
        ),
        in_channels=3,
        task="detection" if architecture.startswith("centernet") else "classification",
    )


def test_a_detector_trains_on_coco_boxes_and_validates_map(tmp_path: Path) -> None:
    forest = DeepForestSampleData(wheel_dir=WHEELS)
    spec = _spec("centernet_resnet34", 1, SIZE)
    evaluation = DataSelection(source=forest, batch_size=2)
    recipe = TrainingRecipe(
        epochs=4, batch_size=2, optimizer="adamw", lr=5e-4, weight_decay=0.0,
        lr_scheduler="constant", augmentation="horizontal_flip", device="cpu",
    )  # fmt: skip
    with bind_task(spec, forest, evaluation) as task:
        train_set = task.training_set(recipe)
        assert len(train_set) == 2
        image, targets = train_set[0]
        assert image.shape == (3, SIZE, SIZE)
        assert targets["heatmap"].shape == (1, SIZE // 4, SIZE // 4)
        # Every tree of the image is a centre (boxes that share a cell count once).
        assert 20 < int(targets["mask"].sum()) <= 98
        torch.manual_seed(0)
        model = build_model("centernet_resnet34", 1)
        result = train(
            model, recipe=recipe, checkpoint_dir=tmp_path, progress=False,
            **task.loop_arguments(recipe),
        )  # fmt: skip
    losses = [epoch["train_loss"] for epoch in result["history"]]
    assert losses[-1] < losses[0]  # CenterNet's loss falls on the real boxes
    assert all(0.0 <= epoch["val_map"] <= 100.0 for epoch in result["history"])


def test_a_classification_augmentation_is_refused_for_a_detector() -> None:
    forest = DeepForestSampleData(wheel_dir=WHEELS)
    spec = _spec("centernet_resnet34", 1, SIZE)
    with (
        bind_task(spec, forest, DataSelection(source=forest)) as task,
        pytest.raises(ValueError, match="'pad_crop_flip' is for classifiers"),
    ):
        task.training_set(TrainingRecipe())


def test_a_detector_whose_classes_differ_from_the_annotations_is_refused() -> None:
    forest = DeepForestSampleData(wheel_dir=WHEELS)
    spec = _spec("centernet_resnet34", 80, SIZE)
    recipe = TrainingRecipe(augmentation="horizontal_flip")
    with (
        pytest.raises(ValueError, match="has 1 categories but model 'm' predicts num_classes=80"),
        bind_task(spec, forest, DataSelection(source=forest)) as task,
    ):
        task.training_set(recipe)  # refused before any step: the loop builds it first


def test_a_classifier_fine_tunes_on_an_imagenet_layout_folder(tmp_path: Path) -> None:
    folder = tmp_path / "imagenet"
    assert write_imagenet_folder(foolbox_imagenet_sample(), folder) == 20
    assert len([p for p in folder.iterdir() if p.is_dir()]) == 19  # two images share a class
    spec = _spec("mobilenet_v3_small", 1000, 64)
    evaluation = DataSelection(source=ImageFolderData(path=folder), batch_size=10)
    recipe = TrainingRecipe(
        epochs=1, batch_size=10, augmentation="random_resized_crop_flip", device="cpu"
    )
    with bind_task(spec, ImageFolderTrainingData(path=folder), evaluation) as task:
        train_set = task.training_set(recipe)
        labels = sorted(int(train_set[i][1]) for i in range(len(train_set)))
        assert labels == sorted(index for _, index in foolbox_imagenet_sample())
        result = train(
            build_model("mobilenet_v3_small", 1000), recipe=recipe, checkpoint_dir=tmp_path,
            progress=False, **task.loop_arguments(recipe),
        )  # fmt: skip
    assert result["history"][0]["epoch"] == 1 and "val_top1" in result["history"][0]
