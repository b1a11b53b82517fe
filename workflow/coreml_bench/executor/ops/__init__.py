"""The executor's op implementations, one module per op family; importing this package fills
``OPS`` (MIL op type → ``OpEntry``)."""

from . import (  # noqa: F401
    elementwise,
    indexing,
    linear,
    normalization,
    pooling,
    quantization,
    resize,
    sequence,
    shape,
    state,
)
from .registry import OPS, OpEntry

__all__ = ["OPS", "OpEntry"]
