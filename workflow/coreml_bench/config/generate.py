"""Files generated from the schema: the quickstart config, the JSON schema and the parameter
table of ``config/README.md``. Tests keep the committed copies in sync."""

from __future__ import annotations

import json
from typing import Any

import yaml

from .schema import WorkflowConfig

CONFIG_HEADER = """\
# Quickstart config, GENERATED from the pydantic models (workflow/coreml_bench/config/) by
# `coreml-bench write-config`; tests/config/test_generate.py fails if it drifts. Copy it to
# make your own study; the schema is workflow/schemas/config.schema.json.
"""


def default_config_yaml() -> str:
    data = WorkflowConfig().model_dump(mode="json", exclude_none=True)
    return CONFIG_HEADER + yaml.safe_dump(data, sort_keys=False, width=100)


def json_schema() -> dict[str, Any]:
    return WorkflowConfig.model_json_schema()


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
