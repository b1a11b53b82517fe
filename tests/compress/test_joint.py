"""Joint compression presets: coremltools' two-pass chains on a real package, read back and
run by the executor, against torch carrying the decompressed weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from coreml_bench.compress import ALGORITHMS
from coreml_bench.compress.joint import PalettizeInt8Lut, PrunePalettize, PruneQuantize
from coreml_bench.compress.record import weight_encodings
from coreml_bench.evaluate.weights_torch import fuse_batchnorm, load_package_weights
from coreml_bench.executor.runtime import CompiledProgram, load_or_compile
from coreml_bench.io import directory_bytes
from coreml_bench.mlpackage.program import read_package_weights
from coreml_bench.models import build_model
from pydantic import ValidationError

PRESETS = {
    "prune_palettize": (
        PrunePalettize(target_sparsity=0.75, n_bits=4),
        "constexpr_lut_to_sparse+constexpr_sparse_to_dense",
    ),
    "palettize_int8_lut": (
        PalettizeInt8Lut(n_bits=4),
        "constexpr_blockwise_shift_scale+constexpr_lut_to_dense",
    ),
    "prune_quantize": (
        PruneQuantize(target_sparsity=0.75),
        "constexpr_sparse_blockwise_shift_scale+constexpr_sparse_to_dense",
    ),
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_compresses_jointly_and_runs(
    name: str, fashion_package: Path, tmp_path: Path
) -> None:
    import coremltools as ct

    params, chain = PRESETS[name]
    package = tmp_path / f"{name}.mlpackage"
    mlmodel = ct.models.MLModel(str(fashion_package), skip_model_load=True)
    ALGORITHMS[name].apply(mlmodel, params).save(str(package))  # type: ignore[misc]
    # The four weights over weight_threshold carry the joint chain; the two small stay dense.
    assert weight_encodings(package) == {chain: 4, "const": 2}
    assert directory_bytes(package) < directory_bytes(fashion_package) / 2
    weights = read_package_weights(package)
    for weight in weights:
        if weight.weight_encoding == "const":
            continue
        values = weight.weight[weight.weight != 0]
        if "sparse" in chain:
            assert abs(1 - values.size / weight.weight.size - 0.75) < 0.01
        if "lut" in chain:
            assert len(np.unique(values)) <= 16  # a 4-bit table (int8-quantized or not)
        if name == "palettize_int8_lut":
            # An int8 table per tensor (symmetric: scale = max |entry| / 127): every entry
            # is an integer multiple of the scale, to fp16 rounding of the product.
            table = np.unique(values)
            steps = table / (np.abs(table).max() / 127)
            assert np.allclose(steps, np.round(steps), atol=0.1)
    # The executor runs the chain; torch with the decompressed weights agrees to fp16.
    torch.manual_seed(0)  # the fixture's network, BatchNorm folded as the package has it
    network = fuse_batchnorm(build_model("fashion_cnn", 10).eval())
    network = load_package_weights(network, package, stored=weights).eval()
    images = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    program = CompiledProgram(load_or_compile(package, cache=False))
    ours = program.rows(images)["logits"].float()
    with torch.no_grad():
        reference = network(images)
    scale = float(reference.abs().max())
    assert float((ours - reference).abs().max()) < 0.01 * scale


def test_preset_params_are_validated() -> None:
    with pytest.raises(ValidationError, match="target_sparsity"):
        PrunePalettize(target_sparsity=1.5, n_bits=4)
    with pytest.raises(ValidationError, match="n_bits"):
        PrunePalettize(target_sparsity=0.5, n_bits=5)
    with pytest.raises(ValidationError, match="group_size"):
        PalettizeInt8Lut(n_bits=4, granularity="per_grouped_channel")
    assert PrunePalettize(target_sparsity=0.75, n_bits=4).label() == "75% sparse + 4 bit"
    assert PruneQuantize(target_sparsity=0.5).minimum_target() == "iOS18"
