"""Activation quantization: quantize and dequantize (``iOS17/quantization_ops.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import OpView, as_tensor, number, one_of, register_op

if TYPE_CHECKING:
    import torch

_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}


def _per_axis(value: Any, x: torch.Tensor, axis: Any) -> torch.Tensor:
    """A scalar, or a [C] vector laid along ``axis`` of x (MIL's broadcast of scale and
    zero_point), as float32."""
    tensor = as_tensor(value, x).float()
    if tensor.ndim == 0 or axis is None:
        return tensor.reshape(()) if tensor.numel() == 1 else tensor
    shape = [1] * x.ndim
    shape[int(number(axis)) % x.ndim] = -1
    return tensor.reshape(shape)


def _rows(view: OpView) -> str | None:
    axis = view.literal("axis")
    rank = view.rank("input")
    if axis is not None and rank and int(axis) % rank == 0:
        return f"{view.op} {view.name!r}: per-axis parameters along the batch axis"
    return None


@register_op("quantize", rows=_rows, check=one_of("output_dtype", tuple(_RANGES)))
def quantize(
    input: torch.Tensor, scale: Any, output_dtype: str, zero_point: Any = None, axis: Any = None
) -> torch.Tensor:
    """clip(round(input / scale) + zero_point) as int8 / uint8, rounding half to even.

    The quotient is taken in float32. For fp16 inputs that is the exact quotient's rounding
    (two 11-bit significands cannot divide to within a float32 ulp of a .5 tie), whereas
    MIL's value inference divides in fp16 and may round a near-tie quotient onto the tie.
    """
    import torch

    low, high = _RANGES[output_dtype]
    q = (input.float() / _per_axis(scale, input, axis)).round_()
    if zero_point is not None:
        q = q.add_(_per_axis(zero_point, input, axis))
    dtype = torch.int8 if output_dtype == "int8" else torch.uint8
    return q.clamp_(low, high).to(dtype)


@register_op("dequantize", rows=_rows)
def dequantize(
    input: torch.Tensor, scale: Any, zero_point: Any = None, axis: Any = None
) -> torch.Tensor:
    """(input − zero_point) × scale in float32, as MIL's reference (for an fp16 scale the
    product of a 9-bit difference and an 11-bit scale is exact before the fp16 rounding)."""
    x = input.float()
    if zero_point is not None:
        x = x - _per_axis(zero_point, x, axis)
    return x * _per_axis(scale, x, axis)
