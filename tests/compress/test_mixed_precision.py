"""Budgeted mixed precision: real sensitivity records of two settings, the search, the
per-op config it writes, and coremltools applying it - priced as the package comes out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from coreml_bench.compress.coreml_side import PalettizeKmeans
from coreml_bench.compress.mixed_precision import (
    MixedPrecision,
    apply_selection,
    select_mixed_precision,
)
from coreml_bench.io import directory_bytes
from coreml_bench.mlpackage.tensors import stored_weights
from coreml_bench.sensitivity.measure import layer_sensitivity, reference_outputs
from coreml_bench.sensitivity.settings import CalibrationSettings
from fashion import evaluation, preprocessing, require_fashion_mnist
from pydantic import ValidationError

SETTINGS = {"k4": PalettizeKmeans(n_bits=4), "k2": PalettizeKmeans(n_bits=2)}
CALIBRATION = CalibrationSettings(views_per_image=2, batch_size=16)


@pytest.fixture(scope="module")
def records(fashion_package: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Per-layer sensitivity of 4- and 2-bit k-means on the seeded FashionCNN, 16 samples."""
    import coremltools as ct
    from coreml_bench.compress.coreml_side import pass_config

    require_fashion_mnist()
    folder = tmp_path_factory.mktemp("sensitivity")
    data = evaluation({**_data(), "limit": 8})
    reference_outputs(
        package=fashion_package, data=data, preprocessing=preprocessing(),
        settings=CALIBRATION, output=folder / "ref.pt", record=folder / "ref.json",
        context={"model": "cnn"},
    )  # fmt: skip
    found = {}
    for name, setting in SETTINGS.items():
        package = folder / f"{name}.mlpackage"
        mlmodel = ct.models.MLModel(str(fashion_package), skip_model_load=True)
        pass_config(setting).run(mlmodel).save(str(package))
        found[name] = layer_sensitivity(
            fp16_package=fashion_package, package=package, reference=folder / "ref.pt",
            data=data, preprocessing=preprocessing(), settings=CALIBRATION,
            setting={"experiment": name, "label": setting.label()},
            output=folder / f"{name}.json", context={"model": "cnn", "experiment": name},
        )  # fmt: skip
    return found


def _data() -> dict:
    from fashion import DATA

    return dict(DATA)


def test_records_rank_every_compressed_tensor(records: dict) -> None:
    for name, record in records.items():
        assert record["calibration"]["n_samples"] == 16
        assert len(record["layers"]) == 4, name  # the tensors over weight_threshold
        for layer in record["layers"]:
            assert layer["compressed_bytes"] < layer["dense_bytes"]
            assert layer["kl"] >= 0
    # Two bits cost more than four on every tensor of this network.
    assert all(
        two["kl"] > four["kl"]
        for two, four in zip(records["k2"]["layers"], records["k4"]["layers"], strict=True)
    )


@pytest.mark.parametrize("method", ["knapsack", "greedy"])
def test_searched_package_meets_its_budget_as_priced(
    method: str, records: dict, fashion_package: Path, tmp_path: Path
) -> None:
    import coremltools as ct

    budget = (records["k4"]["package_bytes"] + records["k2"]["package_bytes"]) // 2
    params = MixedPrecision(candidates=["k4", "k2"], size_mb=budget / 1e6, search=method)
    search = select_mixed_precision(
        params=params, records=records, candidates=SETTINGS, size_of_bytes=None,
        selection=tmp_path / "selection.yaml", output=tmp_path / "search.json",
        context={"model": "cnn", "experiment": "mixed"},
    )  # fmt: skip
    assert search["budget_bytes"] == budget
    assert search["predicted_package_bytes"] <= budget
    chosen = {c["setting"] for c in search["choices"]}
    assert chosen <= {"k4", "k2", "fp16"} and len(chosen) >= 2  # a real mix
    configs = yaml.safe_load((tmp_path / "selection.yaml").read_text())
    assert list(configs) == ["palettize_weights"]
    mlmodel = ct.models.MLModel(str(fashion_package), skip_model_load=True)
    package = tmp_path / "mixed.mlpackage"
    apply_selection(mlmodel, tmp_path / "selection.yaml").save(str(package))
    actual = directory_bytes(package)
    assert actual <= budget
    assert abs(actual - search["predicted_package_bytes"]) / actual < 0.005
    stored = {w.const_name.removesuffix("_palettized"): w for w in stored_weights(package)}
    for choice in search["choices"]:
        assert stored[choice["const_name"]].stored_bytes == choice["stored_bytes"]


def test_one_budget_exactly() -> None:
    with pytest.raises(ValidationError, match="exactly one budget"):
        MixedPrecision(candidates=["k4"])
    with pytest.raises(ValidationError, match="exactly one budget"):
        MixedPrecision(candidates=["k4"], size_mb=1.0, compression_ratio=4.0)
    with pytest.raises(ValidationError, match="compression_ratio"):
        MixedPrecision(candidates=["k4"], compression_ratio=0.5)
    with pytest.raises(ValidationError, match="twice"):
        MixedPrecision(candidates=["k4", "k4"], size_mb=1.0)


def test_a_selection_naming_another_function_is_refused(tmp_path: Path) -> None:
    selection = tmp_path / "selection.yaml"
    selection.write_text(yaml.safe_dump({"os.system": {"op_name_configs": {}}}))
    with pytest.raises(ValueError, match="not one of"):
        apply_selection(object(), selection)
