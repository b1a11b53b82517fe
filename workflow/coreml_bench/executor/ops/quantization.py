"""Activation quantization: quantize and dequantize (W8A8 programs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import as_tensor, register_op, scalar

if TYPE_CHECKING:
    import torch


def _per_axis(value: Any, x: torch.Tensor, axis: Any) -> torch.Tensor:
    tensor = as_tensor(value, x)
    if tensor.ndim == 0 or tensor.numel() == 1:
        return tensor.reshape(())
    shape = [1] * x.ndim
    shape[int(scalar(axis)) % x.ndim] = -1
    return tensor.reshape(shape)


@register_op("quantize")
def _quantize(a: dict[str, Any], batch: int) -> torch.Tensor:
    """clip(round(input / scale) + zero_point) into int8 / uint8 (MIL ``quantize``)."""
    x = a["x"]
    dtype = str(scalar(a["output_dtype"]))
    low, high = (-128, 127) if dtype == "int8" else (0, 255)
    scale = _per_axis(a["scale"], x, a.get("axis"))
    zero = a.get("zero_point")
    q = (x / scale).round()
    if zero is not None:
        q = q + _per_axis(zero, x, a.get("axis"))
    return q.clamp(low, high)


@register_op("dequantize")
def _dequantize(a: dict[str, Any], batch: int) -> torch.Tensor:
    """(input − zero_point) × scale (MIL ``dequantize``)."""
    x = a["x"]
    zero = a.get("zero_point")
    if zero is not None:
        x = x - _per_axis(zero, x, a.get("axis"))
    return x * _per_axis(a["scale"], x, a.get("axis"))
