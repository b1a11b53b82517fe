"""The generated files (quickstart config, config/README.md, JSON schema) match the models."""

from __future__ import annotations

import json

from coreml_bench.config import WorkflowConfig
from coreml_bench.config.generate import (
    config_readme,
    default_config_yaml,
    json_schema_text,
    parameter_table,
)
from helpers import ROOT


def test_generated_config_and_schema_are_in_sync() -> None:
    """Regenerate with `coreml-bench write-config` when this fails."""
    assert (ROOT / "config" / "config.yaml").read_text() == default_config_yaml()
    assert (ROOT / "workflow" / "schemas" / "config.schema.json").read_text() == json_schema_text()
    assert (ROOT / "config" / "README.md").read_text() == config_readme()


def test_parameter_table_lists_every_top_level_field_and_union_member() -> None:
    table = parameter_table()
    for name in WorkflowConfig.model_fields:
        assert f"| `{name}` |" in table
    # Discriminated unions are expanded per member, so each algorithm's fields are listed.
    assert "`experiments[].compression(algorithm=palettize_kmeans).n_bits`" in table
    assert "`data.evaluation(kind=imagenet_flat).labels`" in table
    assert "`profiling.backend` | `auto` \\| " in table


def test_schema_enumerates_registry_names_for_backend_fields() -> None:
    defs = json.loads(json_schema_text())["$defs"]
    evaluation = defs["EvaluationSettings"]["properties"]["backend"]["enum"]
    profiling = defs["ProfilingSettings"]["properties"]["backend"]["enum"]
    assert evaluation == ["auto", "weights-torch", "mil-torch", "coreml"]
    assert profiling == ["auto", "coreml", "host", "remote"]
    far_side = defs["RemoteSettings"]["properties"]["backend"]["enum"]
    assert set(far_side) == {"coreml", "host"}
