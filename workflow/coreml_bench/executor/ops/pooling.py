"""Pooling and reductions."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .registry import int_list, register_op, scalar, spatial_padding, torch_pad

if TYPE_CHECKING:
    import torch


def _pool(a: dict[str, Any], kind: str) -> torch.Tensor:
    import torch.nn.functional as F

    x = a["x"]
    kernel = int_list(a["kernel_sizes"])
    n = len(kernel)
    strides = int_list(a.get("strides", [1] * n))
    pads = spatial_padding(a, x, kernel)
    ceil_mode = bool(scalar(a.get("ceil_mode", False)))
    if kind == "max":
        if any(pads):
            x = F.pad(x, torch_pad(pads), value=-math.inf)
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[n - 1]
        return pool(x, kernel, strides, ceil_mode=ceil_mode)
    exclude = bool(scalar(a.get("exclude_padding_from_average", False)))
    padded = F.pad(x, torch_pad(pads)) if any(pads) else x
    pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
    total = pool(padded, kernel, strides, ceil_mode=ceil_mode)
    if not exclude or not any(pads):
        return total
    ones = F.pad(x.new_ones((1, 1, *x.shape[2:])), torch_pad(pads))
    return total / pool(ones, kernel, strides, ceil_mode=ceil_mode)


@register_op("max_pool")
def _max_pool(a: dict[str, Any], batch: int) -> torch.Tensor:
    return _pool(a, "max")


@register_op("avg_pool")
def _avg_pool(a: dict[str, Any], batch: int) -> torch.Tensor:
    return _pool(a, "avg")


@register_op("reduce_mean", "reduce_sum", "reduce_max", "reduce_min")
def _reduce(a: dict[str, Any], batch: int) -> torch.Tensor:
    x = a["x"]
    axes = a.get("axes")
    dims = list(range(x.ndim)) if axes is None else int_list(axes)
    keep = bool(scalar(a.get("keep_dims", False)))
    op = a["__op__"]
    if op == "reduce_mean":
        return x.mean(dim=dims, keepdim=keep)
    if op == "reduce_sum":
        return x.sum(dim=dims, keepdim=keep)
    out = x
    for dim in sorted((d % x.ndim for d in dims), reverse=True):
        out = (out.amax if op == "reduce_max" else out.amin)(dim=dim, keepdim=keep)
    return out
