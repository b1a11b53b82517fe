"""Models: the architecture registry (``architectures``), weight sources and the job's spec."""

from .architectures import (
    ARCHITECTURES,
    Architecture,
    build_model,
    calibrate_batch_norm,
    load_model,
    weight_module_types,
)
from .spec import ModelSpec

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "ModelSpec",
    "build_model",
    "calibrate_batch_norm",
    "load_model",
    "weight_module_types",
]
