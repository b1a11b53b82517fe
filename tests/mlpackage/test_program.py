"""Reading a package's weights off Apple: constexpr chains decompressed to exactly what
coremltools' own decompression gives, and constants the mapping cannot place refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from coreml_bench.convert import to_coreml
from coreml_bench.mlpackage.program import PackageWeight, WeightMappingError, read_package_weights
from reference_packages import same_arrays


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
        assert same_arrays(a.weight.astype(np.float32), b.weight), a.op_name
        assert same_arrays(a.bias, b.bias), a.op_name


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
        assert same_arrays(a.weight, b.weight), a.op_name
        assert same_arrays(a.bias, b.bias), a.op_name


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


def test_read_package_weights_returns_dataclasses(mnv3: tuple[torch.nn.Module, Path]) -> None:
    _model, package = mnv3
    first = read_package_weights(package)[0]
    assert isinstance(first, PackageWeight)
    assert first.op_type == "conv"
    assert first.bias is not None  # folded BatchNorm: the torch conv had bias=False
