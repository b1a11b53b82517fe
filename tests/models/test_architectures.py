"""The architecture registry's preprocessing is each model's own: torchvision's weights
transforms for the seeds' checkpoints, timm's data config for MobileViTv2."""

from __future__ import annotations

import pytest
from coreml_bench.download import torchvision_weights_url
from coreml_bench.models import ARCHITECTURES

SEED_CHECKPOINTS = {
    "MobileNet_V2_Weights.IMAGENET1K_V1": ("mobilenet_v2", "mobilenet_v2-b0353104.pth"),
    "MobileNet_V3_Small_Weights.IMAGENET1K_V1": (
        "mobilenet_v3_small", "mobilenet_v3_small-047dcff4.pth"
    ),
    "ResNet50_Weights.IMAGENET1K_V1": ("resnet50", "resnet50-0676ba61.pth"),
    "ResNet34_Weights.IMAGENET1K_V1": ("resnet34", "resnet34-b627a593.pth"),
}  # fmt: skip


@pytest.mark.parametrize("weights", sorted(SEED_CHECKPOINTS))
def test_torchvision_sources_are_the_seeds_checkpoints_with_their_preprocessing(
    weights: str,
) -> None:
    """The exact files the seeds link, hash-prefix checked; preprocessing = torchvision's."""
    import torchvision

    architecture, filename = SEED_CHECKPOINTS[weights]
    url, prefix = torchvision_weights_url(weights)
    assert url == f"https://download.pytorch.org/models/{filename}"
    assert filename.endswith(f"-{prefix}.pth") and len(prefix) == 8
    reference = torchvision.models.get_weight(weights).transforms()
    arch = ARCHITECTURES[architecture]
    assert [arch.resize] == list(reference.resize_size)
    assert [arch.input_size] == list(reference.crop_size)
    assert arch.interpolation == reference.interpolation.value
    assert list(arch.mean) == list(reference.mean) and list(arch.std) == list(reference.std)


def test_mobilevit_preprocessing_is_timms_cvnets_config() -> None:
    import timm

    model = timm.create_model("mobilevitv2_100", pretrained=False)
    reference = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**reference)
    arch = ARCHITECTURES["mobilevitv2_100"]
    assert reference["input_size"] == (3, arch.input_size, arch.input_size)
    assert transform.transforms[0].size == arch.resize  # 256 / crop_pct 0.888, floored
    assert reference["interpolation"] == arch.interpolation
    assert tuple(reference["mean"]) == arch.mean and tuple(reference["std"]) == arch.std
