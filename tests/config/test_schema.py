"""The pydantic config tree: defaults, generated files, and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from coreml_bench.compress import ALGORITHMS
from coreml_bench.config import (
    ConfigError,
    WorkflowConfig,
    load_config,
    validate_config,
)
from coreml_bench.config.generate import default_config_yaml, json_schema_text
from helpers import ROOT


def test_default_config_is_the_quickstart() -> None:
    cfg = load_config(ROOT / "config" / "config.yaml")
    assert cfg == WorkflowConfig()
    assert [m.id for m in cfg.models] == ["efficientnet_lite0"]
    assert cfg.models[0].source.kind == "package"
    assert len(cfg.variants()) == 10
    algorithms = {e.compression.algorithm for e in cfg.experiments}
    assert algorithms == {"none", "palettize_kmeans", "quantize_linear", "prune_magnitude"}


def test_schema_lists_every_registered_algorithm() -> None:
    schema = json.loads(json_schema_text())
    text = json.dumps(schema)
    for name in ALGORITHMS.names():
        assert f'"{name}"' in text


def _config_with(**overrides: object) -> dict:
    data = yaml.safe_load(default_config_yaml())
    data.update(overrides)
    return data


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    return str(info.value)


def test_typo_names_the_field() -> None:
    raw = _config_with()
    raw["profiling"] = {"runz": 3}
    message = _error(raw)
    assert "profiling.runz" in message and "Extra inputs are not permitted" in message


def test_bad_bit_width_names_path_and_value() -> None:
    raw = _config_with(
        experiments=[{"id": "k5", "compression": {"algorithm": "palettize_kmeans", "n_bits": 5}}]
    )
    message = _error(raw)
    assert "experiments[0].compression.palettize_kmeans.n_bits" in message
    assert "(got 5)" in message


def test_unknown_algorithm_and_architecture() -> None:
    raw = _config_with(experiments=[{"id": "x", "compression": {"algorithm": "magic"}}])
    assert "'magic'" in _error(raw) and "palettize_kmeans" in _error(raw)
    raw = _config_with()
    raw["models"][0]["architecture"] = "alexnet9000"
    message = _error(raw)
    assert "models[0].architecture" in message and "alexnet9000" in message


@pytest.mark.parametrize("bad_id", ["../escape", "a b", "", ".hidden", "x/y"])
def test_ids_must_be_safe_path_components(bad_id: str) -> None:
    raw = _config_with(experiments=[{"id": bad_id, "compression": {"algorithm": "none"}}])
    assert "experiments[0].id" in _error(raw)


def test_duplicate_ids_and_unknown_model_reference() -> None:
    raw = _config_with(
        experiments=[
            {"id": "a", "compression": {"algorithm": "none"}},
            {"id": "a", "compression": {"algorithm": "none"}, "models": ["nope"]},
        ]
    )
    message = _error(raw)
    assert "experiments[1].id: duplicate id 'a'" in message
    assert "experiments[1].models[0]: unknown model id 'nope'" in message


@pytest.mark.parametrize(
    ("compression", "needle"),
    [
        ({"algorithm": "prune_magnitude", "target_sparsity": 1.5}, "target_sparsity"),
        ({"algorithm": "prune_magnitude"}, "exactly one of target_sparsity or n_m"),
        ({"algorithm": "prune_magnitude", "n_m": [4, 2]}, "0 < n < m"),
        (
            {"algorithm": "palettize_kmeans", "n_bits": 4, "granularity": "per_grouped_channel"},
            "group_size is required",
        ),
        ({"algorithm": "quantize_linear", "granularity": "per_block"}, "block_size is required"),
        ({"algorithm": "quantize_linear", "dtype": "int3"}, "dtype"),
    ],
)
def test_algorithm_parameters_are_validated(compression: dict, needle: str) -> None:
    raw = _config_with(experiments=[{"id": "e", "compression": compression}])
    assert needle in _error(raw)


def test_deployment_target_must_support_the_compression() -> None:
    raw = _config_with(
        conversion={"minimum_deployment_target": "iOS17", "method": "export"},
        experiments=[
            {"id": "g", "compression": {"algorithm": "palettize_kmeans", "n_bits": 4,
                                        "granularity": "per_grouped_channel", "group_size": 16}}
        ],
    )  # fmt: skip
    message = _error(raw)
    assert "experiments[0].compression" in message and "iOS18" in message


def test_variants_expand_models_experiments_trials() -> None:
    raw = _config_with(
        models=[
            {"id": "a", "architecture": "resnet18", "source": {"kind": "random"}},
            {"id": "b", "architecture": "mobilenet_v3_small",
             "source": {"kind": "random", "seed": 3}},
        ],
        experiments=[
            {"id": "fp16", "compression": {"algorithm": "none"}},
            {"id": "k4", "compression": {"algorithm": "palettize_kmeans", "n_bits": 4},
             "trials": 3, "models": ["b"]},
        ],
    )  # fmt: skip
    cfg = validate_config(raw)
    assert cfg.variants() == [
        ("a", "fp16", 1), ("b", "fp16", 1), ("b", "k4", 1), ("b", "k4", 2), ("b", "k4", 3),
    ]  # fmt: skip


def test_model_defaults_come_from_the_registry() -> None:
    cfg = WorkflowConfig()
    resolved = cfg.models[0].resolved()
    assert resolved["display_name"] == "EfficientNet-Lite0"
    assert resolved["input_size"] == 224
    assert resolved["preprocessing"]["mean"] == [127 / 255] * 3


@pytest.mark.parametrize("path", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path: Path) -> None:
    assert load_config(path).variants()


def test_missing_local_paths_are_reported_before_any_job(tmp_path: Path) -> None:
    from coreml_bench.config import check_local_paths

    raw = _config_with(
        data={"evaluation": {"kind": "imagenet_folder", "path": str(tmp_path / "no")}}
    )
    raw["models"][0]["source"] = {"kind": "local", "path": str(tmp_path / "w.pth")}
    with pytest.raises(ConfigError) as info:
        check_local_paths(validate_config(raw))
    assert "data.evaluation.path" in str(info.value) and "models[0].source.path" in str(info.value)
    check_local_paths(WorkflowConfig())  # the quickstart needs no local paths
