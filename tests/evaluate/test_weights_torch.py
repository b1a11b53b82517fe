"""The off-Apple evaluation path: package weights back in the torch graph, proven exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from coreml_bench.convert import to_coreml
from coreml_bench.evaluate.weights_torch import fuse_batchnorm, load_package_weights, weight_modules
from coreml_bench.mlpackage.program import WeightMappingError, read_package_weights
from coreml_bench.models import ARCHITECTURES, build_model
from reference_packages import FP16_TOLERANCE, perturb_batchnorm, relative_gap


def test_real_lite0_package_agrees_with_torch_on_imagenet(
    lite0: tuple[torch.nn.Module, Path], imagenet20: tuple[torch.Tensor, torch.Tensor]
) -> None:
    model, package = lite0
    images, labels = imagenet20
    carried = load_package_weights(model, package)
    with torch.no_grad():
        reference, ours = model(images), carried(images)
    assert relative_gap(reference, ours) < FP16_TOLERANCE
    assert torch.equal(reference.argmax(1), ours.argmax(1))
    torch_correct = int((reference.argmax(1) == labels).sum())
    package_correct = int((ours.argmax(1) == labels).sum())
    assert torch_correct == package_correct == 17  # 85 % on the 20 images


def test_fuse_batchnorm_keeps_efficientnet_padding_and_original(
    lite0: tuple[torch.nn.Module, Path],
) -> None:
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    model, _package = lite0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    # The stride-2 convs keep their asymmetric TF "SAME" padding after folding.
    stem = fused.get_submodule("_conv_stem")
    assert isinstance(stem, Conv2dStaticSamePadding)
    assert isinstance(stem.static_padding, torch.nn.ZeroPad2d)
    assert stem.bias is not None  # the folded BatchNorm's shift
    x = torch.rand(2, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-4, rtol=1e-4)


def test_program_order_is_fx_order(mnv3: tuple[torch.nn.Module, Path]) -> None:
    model, package = mnv3
    modules = weight_modules(fuse_batchnorm(model))
    stored = read_package_weights(package)
    assert [tuple(m.weight.shape) for _n, m in modules] == [w.weight.shape for w in stored]
    assert [n for n, _m in modules][-2:] == ["classifier.0", "classifier.3"]
    assert [w.op_type for w in stored][-2:] == ["linear", "linear"]
    assert all(w.weight_encoding == "const" for w in stored)
    assert all(w.weight.dtype == np.float32 for w in stored)


def test_random_mnv3_package_agrees_with_torch(mnv3: tuple[torch.nn.Module, Path]) -> None:
    model, package = mnv3
    carried = load_package_weights(model, package)
    torch.manual_seed(1)
    x = torch.rand(8, 3, 224, 224)
    with torch.no_grad():
        reference, ours = model(x), carried(x)
    assert relative_gap(reference, ours) < FP16_TOLERANCE
    assert torch.equal(reference.argmax(1), ours.argmax(1))


def test_wrong_architecture_names_first_mismatch(
    mnv3: tuple[torch.nn.Module, Path], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    package = tmp_path / "resnet18.mlpackage"
    to_coreml(build_model("resnet18"), 224).save(str(package))
    with pytest.raises(WeightMappingError) as raised:
        load_package_weights(build_model("mobilenet_v3_small"), package)
    message = str(raised.value)
    assert "resnet18.mlpackage" in message
    assert "weight 0: torch module features.0.0 (Conv2d, weight (16, 3, 3, 3))" in message
    assert "weight (64, 3, 7, 7)" in message
    # Same architecture but a 10-class head: everything agrees up to the last linear.
    _model, fp16 = mnv3
    with pytest.raises(WeightMappingError, match=r"weight 53: torch module classifier\.3 "):
        load_package_weights(build_model("mobilenet_v3_small", num_classes=10), fp16)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES.names()))
def test_every_registry_model_round_trips(architecture: str, tmp_path: Path) -> None:
    """Program order equals the traced call order on every registry architecture (fx, or
    torch.export where fx cannot trace, as for MobileViTv2; about 90 s in all)."""
    torch.manual_seed(0)
    model = build_model(architecture)
    perturb_batchnorm(model)
    package = tmp_path / f"{architecture}.mlpackage"
    size = ARCHITECTURES[architecture].input_size
    to_coreml(model, size).save(str(package))
    carried = load_package_weights(model, package)
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        assert relative_gap(model(x), carried(x)) < FP16_TOLERANCE


class _ShapeBranching(torch.nn.Module):
    """conv → BatchNormAct2d (SiLU) → conv → BatchNorm, with a Python branch on the input's
    size (as MobileViTv2's unfolding has): torch.fx cannot trace it, torch.export can."""

    def __init__(self) -> None:
        from timm.layers.norm_act import BatchNormAct2d

        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = BatchNormAct2d(8, act_layer=torch.nn.SiLU)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(8)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv1(x))
        if x.shape[-1] % 2:  # a shape-dependent branch: fx traces shapes symbolically
            x = torch.nn.functional.pad(x, (0, 1, 0, 1))
        x = self.bn2(self.conv2(x))
        return self.head(x.mean((2, 3)))


def test_a_model_fx_cannot_trace_maps_through_torch_export(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _ShapeBranching().eval()
    perturb_batchnorm(model)
    with pytest.raises(Exception, match="symbolically traced variables"):
        torch.fx.symbolic_trace(model)
    package = tmp_path / "branching.mlpackage"
    to_coreml(model, 31).save(str(package))
    carried = load_package_weights(model, package)
    # Both BatchNorms are folded; the timm one leaves its SiLU behind, not nothing.
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in carried.modules())
    assert isinstance(carried.bn1, torch.nn.Sequential)
    assert isinstance(carried.bn1[1], torch.nn.SiLU)
    x = torch.rand(2, 3, 31, 31)
    with torch.no_grad():
        assert relative_gap(model(x), carried(x)) < FP16_TOLERANCE
    # The folded copy with fp32 weights is the same function as the model, activation included.
    folded = fuse_batchnorm(model, (1, 3, 31, 31))
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=1e-5)
    names = [name for name, _module in weight_modules(folded, (1, 3, 31, 31))]
    assert names == ["conv1", "conv2", "head"]


def test_an_untraceable_model_without_an_example_shape_is_an_error() -> None:
    with pytest.raises(
        WeightMappingError,
        match=r"_ShapeBranching cannot be traced by torch\.fx.*"
        r"no example input shape",
    ):
        fuse_batchnorm(_ShapeBranching())


def test_a_batchnorm_with_its_own_forward_is_not_folded_blindly() -> None:
    class ScaledBatchNorm(torch.nn.BatchNorm2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * super().forward(x)

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), ScaledBatchNorm(4))
    with pytest.raises(
        WeightMappingError,
        match=r"BatchNorm module 1 \(.*ScaledBatchNorm\) has "
        r"its own forward",
    ):
        fuse_batchnorm(model)
