"""Image transforms: the evaluation transform and the training augmentations, from one spec."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..schema_base import StrictModel

# "none" and "horizontal_flip" apply to detection too (the flip moves the boxes); the crops
# are for classification only.
Augmentation = Literal["none", "horizontal_flip", "pad_crop_flip", "random_resized_crop_flip"]
DETECTION_AUGMENTATIONS = ("none", "horizontal_flip")


class Preprocessing(StrictModel):
    """Eval transform: resize the shorter side, center-crop, scale to [0,1], normalise."""

    resize: int = Field(gt=0)
    crop_size: int = Field(gt=0)
    mean: tuple[float, ...] = Field(min_length=1, description="one value per input channel")
    std: tuple[float, ...] = Field(min_length=1, description="one value per input channel")
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"

    @field_validator("std")
    @classmethod
    def _positive_std(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if min(value) <= 0:
            raise ValueError(f"every std must be > 0, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _one_mean_per_std(self) -> Preprocessing:
        if self.crop_size > self.resize:
            raise ValueError(
                f"crop_size={self.crop_size} is larger than resize={self.resize}: the center "
                "crop would take pixels that are not there"
            )
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"mean has {len(self.mean)} values but std has {len(self.std)}; "
                "give one per input channel"
            )
        return self


def eval_transform(preprocessing: Preprocessing) -> Any:
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import v2 as transforms

    return transforms.Compose(
        [
            transforms.ToImage(),
            transforms.Resize(
                preprocessing.resize,
                interpolation=InterpolationMode(preprocessing.interpolation),
                antialias=True,
            ),
            transforms.CenterCrop(preprocessing.crop_size),
            transforms.ToDtype(torch.float32, scale=True),
            transforms.Normalize(list(preprocessing.mean), list(preprocessing.std)),
        ]
    )


def train_transform(preprocessing: Preprocessing, augmentation: Augmentation) -> Any:
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import v2 as transforms

    crop = preprocessing.crop_size
    interpolation = InterpolationMode(preprocessing.interpolation)
    steps: list[Any] = [transforms.ToImage()]
    if augmentation == "random_resized_crop_flip":
        steps += [
            transforms.RandomResizedCrop(crop, interpolation=interpolation, antialias=True),
            transforms.RandomHorizontalFlip(),
        ]
    else:
        steps += [
            transforms.Resize(preprocessing.resize, interpolation=interpolation, antialias=True),
            transforms.CenterCrop(crop),
        ]
        if augmentation == "horizontal_flip":
            steps += [transforms.RandomHorizontalFlip()]
        if augmentation == "pad_crop_flip":
            # The small-image recipe (CIFAR / Fashion-MNIST): shift by up to 1/8 of the side.
            steps += [transforms.RandomCrop(crop, padding=max(1, crop // 8))]
            steps += [transforms.RandomHorizontalFlip()]
    steps += [
        transforms.ToDtype(torch.float32, scale=True),
        transforms.Normalize(list(preprocessing.mean), list(preprocessing.std)),
    ]
    return transforms.Compose(steps)
