"""Compression: one algorithm registry (``registry``) with Core ML-side entries
(``coreml_side``) and torch-side entries (``torch_side``); the stage functions (``stage``)."""

from . import activation_ptq as _activation_ptq  # noqa: F401 - W8A8 with executor calibration
from . import coreml_side as _coreml_side  # noqa: F401 - registers the Core ML-side algorithms
from . import joint as _joint  # noqa: F401 - the joint compression presets
from . import mixed_precision as _mixed_precision  # noqa: F401 - the searched per-op settings
from . import torch_side as _torch_side  # noqa: F401 - registers the torch-side algorithms
from .registry import ALGORITHMS, Algorithm

__all__ = ["ALGORITHMS", "Algorithm"]
