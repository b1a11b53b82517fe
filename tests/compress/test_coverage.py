"""The dense-weights estimate (what check-config prints before a run) matches what coremltools
does to a real package: the same number of weights stays dense, for each rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from coreml_bench.compress import ALGORITHMS
from coreml_bench.compress.coverage import estimate_dense, weight_shapes
from coreml_bench.compress.record import weight_encodings
from coreml_bench.mlpackage.files import open_package

SETTINGS = [
    {"algorithm": "palettize_kmeans", "n_bits": 4},
    {
        "algorithm": "palettize_kmeans", "n_bits": 4,
        "granularity": "per_grouped_channel", "group_size": 64,
    },
    {"algorithm": "quantize_linear", "dtype": "int4", "granularity": "per_block", "block_size": 64},
    {"algorithm": "quantize_linear", "dtype": "int8", "weight_threshold": 20000},
    {"algorithm": "prune_magnitude", "target_sparsity": 0.5},
]  # fmt: skip


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(map(str, s.values())))
def test_estimate_matches_the_compressed_package(
    setting: dict, fashion_package: Path, tmp_path: Path
) -> None:
    entry = ALGORITHMS[setting["algorithm"]]
    params = entry.params.model_validate(setting)
    estimate = estimate_dense(params, weight_shapes("fashion_cnn", 10))
    assert estimate is not None
    compressed = entry.apply(open_package(fashion_package, skip_model_load=True), params)
    compressed.save(str(tmp_path / "model.mlpackage"))
    encodings = weight_encodings(tmp_path / "model.mlpackage")
    assert encodings.get("const", 0) == len(estimate.dense)
    assert sum(encodings.values()) == len(weight_shapes("fashion_cnn", 10))


def test_algorithms_without_rules_are_not_estimated() -> None:
    params = ALGORITHMS["palettize_dkm"].params.model_validate(
        {"algorithm": "palettize_dkm"}, context={"check_with_coremltools": False}
    )
    assert estimate_dense(params, weight_shapes("fashion_cnn", 10)) is None
