"""Reading a config: validation with field-path errors, and the path checks before a run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..compress.torch_side import COREMLTOOLS_CHECK
from .checks import local_path_problems
from .errors import ConfigError, format_validation_error
from .files import read_config_file
from .schema import WorkflowConfig


def validate_config(raw: Mapping[str, Any], *, coremltools_check: bool = True) -> WorkflowConfig:
    """Validate a plain mapping (e.g. Snakemake's ``config``); raise ConfigError with paths.

    ``coremltools_check=False`` skips coremltools' own validation of torch-side settings
    (the Snakefile's parse: importing coremltools.optimize.torch costs seconds); rule
    check_torch_settings then runs it before any torch-side job.
    """
    try:
        return WorkflowConfig.model_validate(
            dict(raw), context={COREMLTOOLS_CHECK: coremltools_check}
        )
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None


def check_local_paths(cfg: WorkflowConfig, *, planning_only: bool = False) -> list[str]:
    """Paths the run will read must exist before any job starts (not just when it gets there).

    ``planning_only`` (a dry run) returns the problems instead of raising: a plan of the whole
    paper must build where ImageNet and COCO are not (yet) on disk.
    """
    problems = local_path_problems(cfg)
    if problems and not planning_only:
        raise ConfigError("invalid config:\n" + "\n".join(problems))
    return problems


def load_config(path: Path, *, coremltools_check: bool = True) -> WorkflowConfig:
    """A config file read strictly (``config.files``) and validated; ConfigError names both."""
    try:
        return validate_config(read_config_file(path), coremltools_check=coremltools_check)
    except ConfigError as error:
        message = str(error)
        raise ConfigError(
            message if message.startswith(str(path)) else f"{path}: {message}"
        ) from None
