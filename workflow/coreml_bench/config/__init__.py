"""The config: one pydantic tree, validated once before any job, built from the registries.

One module per section that only the config knows (``models``, ``data``, ``experiments``,
``resources``); sections a stage consumes are declared beside that stage
(``convert.ConversionSettings``, ``evaluate.settings``, ``profile.settings``,
``tracking.settings``) and composed here (``schema``). ``checks`` holds what spans sections
and the paths a run reads; ``generate`` the generated files; ``quickstart`` the defaults.
Plugins ($COREML_BENCH_PLUGINS) are imported first, so their registry entries are part of
every union and name field.
"""

from ..registry import load_plugins

load_plugins()

from ..data.kinds import (  # noqa: E402
    CocoData,
    DeepForestSampleData,
    FashionMnistData,
    FashionMnistTrainingData,
    FoolboxSampleData,
    ImageFolderData,
    ImageNetFlatData,
)
from .data import DataConfig  # noqa: E402
from .errors import ConfigError, format_validation_error  # noqa: E402
from .experiments import ExperimentConfig  # noqa: E402
from .load import check_local_paths, load_config, validate_config  # noqa: E402
from .models import ModelConfig  # noqa: E402
from .schema import WorkflowConfig  # noqa: E402

__all__ = [
    "CocoData",
    "ConfigError",
    "DataConfig",
    "DeepForestSampleData",
    "ExperimentConfig",
    "FashionMnistData",
    "FashionMnistTrainingData",
    "FoolboxSampleData",
    "ImageFolderData",
    "ImageNetFlatData",
    "ModelConfig",
    "WorkflowConfig",
    "check_local_paths",
    "format_validation_error",
    "load_config",
    "validate_config",
]
