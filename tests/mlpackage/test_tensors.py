"""Stored weight tensors read from a package's spec: names, encodings and blob bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from coreml_bench.mlpackage.program import read_package_weights
from coreml_bench.mlpackage.tensors import WEIGHT_FILE, blob_sizes, stored_weights


@pytest.fixture(scope="module")
def palettized(fashion_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    package = tmp_path_factory.mktemp("k4") / "k4.mlpackage"
    config = cto.OptimizationConfig(cto.OpPalettizerConfig(mode="kmeans", nbits=4))
    mlmodel = ct.models.MLModel(str(fashion_package), skip_model_load=True)
    cto.palettize_weights(mlmodel, config).save(str(package))
    return package


def test_blobs_tile_the_weight_file(fashion_package: Path) -> None:
    sizes = blob_sizes(fashion_package)
    total = (fashion_package / WEIGHT_FILE).stat().st_size
    assert min(sizes) == 64  # after the file's own 64-byte header
    assert sum(sizes.values()) == total - 64
    # Blobs start 64-byte aligned; only the last one runs to the file's end unpadded.
    assert all(offset % 64 == 0 for offset in sizes)


def test_dense_weights_hold_two_bytes_per_value(fashion_package: Path) -> None:
    stored = stored_weights(fashion_package)
    weights = read_package_weights(fashion_package)
    assert [s.op_name for s in stored] == [w.op_name for w in weights]
    for s, w in zip(stored, weights, strict=True):
        assert s.encoding == "const"
        # fp16 values plus a 64-byte blob header, padded to 64 bytes.
        assert 2 * w.weight.size + 64 <= s.stored_bytes < 2 * w.weight.size + 128


def test_palettized_weights_are_priced_as_stored(fashion_package: Path, palettized: Path) -> None:
    dense = {s.op_name: s for s in stored_weights(fashion_package)}
    compressed = stored_weights(palettized)
    shrunk = [s for s in compressed if s.encoding == "constexpr_lut_to_dense"]
    assert len(shrunk) == 4  # the conv/linear weights over weight_threshold=2048
    for s in shrunk:
        before = dense[s.op_name]
        # 4-bit indices (a quarter of fp16) plus a 16-entry table and two blob headers.
        assert before.stored_bytes / 4 < s.stored_bytes < before.stored_bytes / 4 + 256
        assert s.const_name.startswith(before.const_name)
    total = (palettized / WEIGHT_FILE).stat().st_size
    assert sum(s.stored_bytes for s in compressed) < total
