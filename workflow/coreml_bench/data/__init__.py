"""Data: one registry of data kinds (``kinds``), their readers, transforms and loaders.

Importing this package registers the built-in kinds; it imports no torch.
"""

from . import kinds as _kinds  # noqa: F401 - registers the built-in data kinds
from .common import DataError
from .registry import (
    DATA_KINDS,
    DataKind,
    DataSelection,
    Task,
    evaluation_loader,
    training_dataset,
)
from .transforms import Preprocessing

__all__ = [
    "DATA_KINDS",
    "DataError",
    "DataKind",
    "DataSelection",
    "Preprocessing",
    "Task",
    "evaluation_loader",
    "training_dataset",
]
