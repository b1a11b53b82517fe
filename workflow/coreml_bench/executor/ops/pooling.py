"""Pooling and reductions (``pool.py``, ``reduction.py``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .registry import (
    OpView,
    ints,
    number,
    one_of,
    register_op,
    rows_on_axes,
    rows_per_sample,
    same_padding,
    torch_pad,
)

if TYPE_CHECKING:
    import torch

_PAD_TYPES = ("valid", "same", "same_lower", "custom")


def _pool_pads(
    pad_type: str, pad: Any, sizes: list[int | None], kernel: list[int], strides: list[int]
) -> list[int]:
    """MIL's padding [before_0, after_0, ...]; ``same`` puts the odd element after,
    ``same_lower`` before."""
    n = len(kernel)
    if pad_type == "custom":
        return ints(pad) if pad is not None else [0] * (2 * n)
    if pad_type == "valid":
        return [0] * (2 * n)
    pads = []
    for i in range(n):
        total = same_padding(int(sizes[i] or 0), kernel[i], strides[i], 1)
        before = total // 2 if pad_type == "same" else total - total // 2
        pads += [before, total - before]
    return pads


def _out_sizes(
    sizes: list[int], kernel: list[int], strides: list[int], pads: list[int], ceil_mode: bool
) -> tuple[list[int], list[int]]:
    """The output sizes (MIL's type inference, ``spatial_dimensions_out_shape``) and those torch
    gives on the explicitly padded input; they differ only in ceil mode's last window."""
    mil, torch_sizes = [], []
    for i, size in enumerate(sizes):
        total = pads[2 * i] + pads[2 * i + 1]
        k, s, padded = kernel[i], strides[i], size + total
        if not ceil_mode:
            mil.append((padded - k) // s + 1)
            torch_sizes.append((padded - k) // s + 1)
            continue
        out = (padded - k + s - 1) // s + 1
        # MIL drops a last window that starts past the input (and the left padding) only
        # when there is padding; torch drops one that starts past the padded input.
        mil.append(out - 1 if total > 0 and (out - 1) * s >= size + total / 2 else out)
        torch_sizes.append(out - 1 if (out - 1) * s >= padded else out)
    return mil, torch_sizes


@dataclass(frozen=True)
class _Windows:
    """A pooling op's windows on inputs of spatial ``sizes``: kernel and strides (default 1),
    MIL's pads and output sizes (``mil``), and those torch gives on the padded input."""

    kernel: list[int]
    strides: list[int]
    pads: list[int]
    mil: list[int]
    torch: list[int]

    @classmethod
    def of(
        cls, kernel_sizes: Any, strides: Any, pad_type: str, pad: Any, sizes: list[int],
        ceil_mode: bool,
    ) -> _Windows:  # fmt: skip
        kernel = ints(kernel_sizes)
        stride = ints(strides) if strides is not None else [1] * len(kernel)
        pads = _pool_pads(pad_type, pad, list(sizes), kernel, stride)
        mil, torch_sizes = _out_sizes(list(sizes), kernel, stride, pads, bool(ceil_mode))
        return cls(kernel, stride, pads, mil, torch_sizes)


def _pool_check(view: OpView) -> list[str]:
    reasons = one_of("pad_type", _PAD_TYPES, "valid")(view)
    if reasons or not view.is_literal("kernel_sizes"):
        return reasons or [f"{view.op} {view.name!r}: kernel_sizes computed at run time"]
    sizes = list(view.shape("x")[2:])
    if any(s is None for s in sizes):
        if view.literal("ceil_mode", False) or view.literal("pad_type") in ("same", "same_lower"):
            return [f"{view.op} {view.name!r}: spatial sizes known only at run time"]
        return []
    windows = _Windows.of(
        view.literal("kernel_sizes"), view.literal("strides"), view.literal("pad_type", "valid"),
        view.literal("pad"), sizes, view.literal("ceil_mode", False),
    )  # fmt: skip
    mil = windows.mil
    if any(m > t for m, t in zip(mil, windows.torch, strict=True)):
        return [
            f"{view.op} {view.name!r}: ceil_mode without padding gives a last window wholly "
            f"outside the input (output {mil}), which has no defined value"
        ]
    return []


def _pool(
    x: torch.Tensor,
    kind: str,
    kernel_sizes: Any,
    strides: Any,
    pad_type: str,
    pad: Any,
    ceil_mode: bool,
    exclude_padding_from_average: bool = False,
) -> torch.Tensor:
    """Pool over the explicitly padded input (-inf for max, 0 otherwise) with torch's ceil
    mode, then keep MIL's number of windows. Averages divide by the window clipped to the
    padded input (padding counted) or by its input elements (``exclude_padding_from_average``)."""
    import torch.nn.functional as F

    sizes = list(x.shape[2:])
    windows = _Windows.of(kernel_sizes, strides, pad_type, pad, sizes, ceil_mode)
    kernel, strides, pads, wanted = windows.kernel, windows.strides, windows.pads, windows.mil
    n, ceil_mode = len(kernel), bool(ceil_mode)
    if kind == "max":
        max_pool_nd = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[n - 1]
        before = pads[0::2]
        if (
            not ceil_mode
            and before == pads[1::2]
            and all(2 * p <= k for p, k in zip(before, kernel, strict=True))
        ):
            # torch's own padding is as if by -inf (no window lies wholly in it), without
            # the padded copy: the same windows, the same maxima (ResNet's stem, at batch 8
            # a 27 MB copy).
            out = max_pool_nd(x, kernel, strides, padding=before)
        else:
            padded = F.pad(x, torch_pad(pads), value=-math.inf) if any(pads) else x
            out = max_pool_nd(padded, kernel, strides, ceil_mode=ceil_mode)
    elif kind == "l2":
        # Sum of squares over each (clipped) window: a 2-D sum pool (divisor 1).
        squares = F.pad(x.square(), torch_pad(pads)) if any(pads) else x.square()
        if n == 1:
            sums = F.avg_pool2d(
                squares.unsqueeze(-2),
                [1, *kernel],
                [1, *strides],
                ceil_mode=ceil_mode,
                divisor_override=1,
            ).squeeze(-2)
        else:
            sums = F.avg_pool2d(squares, kernel, strides, ceil_mode=ceil_mode, divisor_override=1)
        out = sums.sqrt_()
    else:
        padded = F.pad(x, torch_pad(pads)) if any(pads) else x
        pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
        out = pool(padded, kernel, strides, ceil_mode=ceil_mode)
        if exclude_padding_from_average and any(pads):
            ones = F.pad(x.new_ones((1, 1, *sizes)), torch_pad(pads))
            out = out / pool(ones, kernel, strides, ceil_mode=ceil_mode)
    if list(out.shape[2:]) != wanted:
        out = out[(slice(None), slice(None), *(slice(0, w) for w in wanted))].contiguous()
    return out


@register_op("max_pool", rows=rows_per_sample, exact_fp16=True, check=_pool_check)
def max_pool(
    x: torch.Tensor,
    kernel_sizes: Any,
    strides: Any = None,
    pad_type: str = "valid",
    pad: Any = None,
    ceil_mode: bool = False,
) -> torch.Tensor:
    return _pool(x, "max", kernel_sizes, strides, pad_type, pad, ceil_mode)


@register_op("avg_pool", rows=rows_per_sample, check=_pool_check)
def avg_pool(
    x: torch.Tensor,
    kernel_sizes: Any,
    strides: Any = None,
    pad_type: str = "valid",
    pad: Any = None,
    exclude_padding_from_average: bool = False,
    ceil_mode: bool = False,
) -> torch.Tensor:
    return _pool(
        x, "avg", kernel_sizes, strides, pad_type, pad, ceil_mode, exclude_padding_from_average
    )


@register_op("l2_pool", rows=rows_per_sample, check=_pool_check)
def l2_pool(
    x: torch.Tensor,
    kernel_sizes: Any,
    strides: Any = None,
    pad_type: str = "valid",
    pad: Any = None,
    ceil_mode: bool = False,
) -> torch.Tensor:
    """sqrt(sum of squares over the window), padding counting as zeros."""
    return _pool(x, "l2", kernel_sizes, strides, pad_type, pad, ceil_mode)


def _dims(x: torch.Tensor, axes: Any) -> list[int]:
    return sorted({a % x.ndim for a in ints(axes)}) if axes is not None else list(range(x.ndim))


REDUCTIONS = (
    "reduce_mean", "reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_l1_norm",
    "reduce_l2_norm", "reduce_log_sum", "reduce_log_sum_exp", "reduce_sum_square",
)  # fmt: skip
# int32 in, int32 out: MIL computes these in floating point and truncates (``astype``).
_REAL_VALUED = ("reduce_mean", "reduce_l2_norm", "reduce_log_sum", "reduce_log_sum_exp")


def _reduce_rows(view: Any) -> str | None:
    return rows_on_axes("axes", default_all=True)(view)


def _reduce_float(x: torch.Tensor, op: str, dims: list[int], keep: bool) -> torch.Tensor:
    import torch

    if op == "reduce_mean":
        return x.mean(dim=dims, keepdim=keep)
    if op == "reduce_l2_norm":
        return x.square().sum(dim=dims, keepdim=keep).sqrt_()
    if op == "reduce_log_sum":
        return x.sum(dim=dims, keepdim=keep).log_()
    return torch.logsumexp(x, dim=dims, keepdim=keep)


def _reduce_int(x: torch.Tensor, op: str, dims: list[int], keep: bool) -> torch.Tensor:
    """The real-valued reductions of an int32 tensor, truncated back to int32."""
    import torch

    if op == "reduce_mean":
        # numpy's mean (float64) truncated: exactly the truncating division of the sum.
        count = math.prod(x.shape[d] for d in dims)
        total = x.sum(dim=dims, keepdim=keep, dtype=torch.int64)
        return torch.div(total, count, rounding_mode="trunc").to(torch.int32)
    wide = x.double()
    if op == "reduce_log_sum_exp":
        # numpy's reference: log(sum(exp(x - max))) + max, the max kept as an int.
        peak = wide.amax(dim=dims, keepdim=True)
        out = (wide - peak).exp_().sum(dim=dims, keepdim=True).log_().add_(peak)
        out = out if keep else out.squeeze(dims)
    else:
        out = _reduce_float(wide, op, dims, keep)
    return out.trunc_().to(torch.int32)


def _no_reduction(x: torch.Tensor, op: str) -> torch.Tensor:
    """``axes=[]``: numpy reduces nothing, the elementwise part still applies (torch's
    ``dim=[]`` would reduce every axis instead)."""
    import torch

    if op == "reduce_sum_square":
        return x.square()
    if op in ("reduce_l1_norm", "reduce_l2_norm"):
        return x.abs()
    if op == "reduce_log_sum":
        return x.float().log().trunc_().to(torch.int32) if not x.is_floating_point() else x.log()
    return x.clone()  # mean, sum, max, min, prod, log_sum_exp: x itself, as a fresh tensor


@register_op(*(r for r in REDUCTIONS if r not in ("reduce_max", "reduce_min")), rows=_reduce_rows)
@register_op("reduce_max", "reduce_min", rows=_reduce_rows, exact_fp16=True)
def reduce(x: torch.Tensor, op: str, axes: Any = None, keep_dims: bool = False) -> torch.Tensor:
    """MIL reductions (``reduction.py``): axes omitted reduce every axis; negative axes count
    from the end; int32 inputs give int32 results (sums wrap around as numpy's astype)."""
    dims = _dims(x, axes)
    keep = bool(keep_dims)
    if not dims:
        return _no_reduction(x, op)
    if op in _REAL_VALUED:
        if x.is_floating_point():
            return _reduce_float(x, op, dims, keep)
        return _reduce_int(x, op, dims, keep)
    if op == "reduce_max":
        return x.amax(dim=dims, keepdim=keep)
    if op == "reduce_min":
        return x.amin(dim=dims, keepdim=keep)
    if op == "reduce_sum_square":
        x = x.square()
    elif op == "reduce_l1_norm":
        x = x.abs()
    if op != "reduce_prod":
        return x.sum(dim=dims, keepdim=keep, dtype=x.dtype)
    out = x
    for dim in sorted(dims, reverse=True):  # torch's prod takes one axis at a time
        out = out.prod(dim=dim, keepdim=keep)
    # int32 products come back as int64; the low 32 bits are numpy's wrapped int32.
    return out.to(x.dtype)


_ARG_DTYPES = ("int32", "uint16")


def _arg_check(view: OpView) -> list[str]:
    reasons = one_of("output_dtype", _ARG_DTYPES, "int32")(view)
    if reasons or view.literal("output_dtype", "int32") != "uint16":
        return reasons
    # uint16 indices are held as int32; an axis longer than 65536 could not be indexed.
    shape = view.shape("x")
    axis = view.literal("axis", -1)
    size = shape[int(axis) % len(shape)] if shape and axis is not None else None
    if size is None or size > 65536:
        return [f"{view.op} {view.name!r}: uint16 indices along an axis of size {size}"]
    return []


@register_op(
    "reduce_argmax", "reduce_argmin", rows=rows_on_axes("axis", default_all=False), check=_arg_check
)
def reduce_arg(
    x: torch.Tensor, op: str, axis: Any = -1, keep_dims: bool = False, output_dtype: str = "int32"
) -> torch.Tensor:
    """Index of the first maximum / minimum along ``axis`` (int32 values; iOS17's uint16
    output holds the same indices)."""
    import torch

    dim = int(number(axis))
    # torch returns the first occurrence, and a NaN wins over numbers, as numpy does.
    find = torch.argmax if op == "reduce_argmax" else torch.argmin
    return find(x, dim=dim, keepdim=bool(keep_dims)).to(torch.int32)
