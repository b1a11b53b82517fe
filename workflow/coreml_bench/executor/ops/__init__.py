"""The executor's op implementations, one module per op family; importing this package fills
``OPS`` (MIL op type → function)."""

from . import elementwise, linear, normalization, pooling, quantization, shape  # noqa: F401
from .registry import OPS, OpFunction

__all__ = ["OPS", "OpFunction"]
