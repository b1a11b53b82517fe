"""Normalisation: batch_norm, instance_norm, layer_norm, l2_norm, local_response_norm
(``normalization.py``; iOS17 lets gamma, beta and epsilon differ from x's float type, which
changes nothing here: every parameter arrives as float32)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import (
    OpView,
    as_tensor,
    ints,
    number,
    register_op,
    rows_on_axes,
    rows_per_sample,
)

if TYPE_CHECKING:
    import torch


def _per_channel(value: Any, x: torch.Tensor) -> torch.Tensor:
    """A [C] parameter shaped to broadcast along axis 1 of x."""
    return as_tensor(value, x).float().reshape([1, -1] + [1] * (x.ndim - 2))


@register_op("batch_norm", rows=rows_per_sample)
def batch_norm(
    x: torch.Tensor,
    mean: Any,
    variance: Any,
    gamma: Any = None,
    beta: Any = None,
    epsilon: Any = 1e-5,
) -> torch.Tensor:
    y = (x - _per_channel(mean, x)) / (_per_channel(variance, x) + float(number(epsilon))).sqrt()
    if gamma is not None:
        y = y * _per_channel(gamma, x)
    if beta is not None:
        y = y + _per_channel(beta, x)
    return y


@register_op("instance_norm", rows=rows_per_sample)
def instance_norm(
    x: torch.Tensor, gamma: Any = None, beta: Any = None, epsilon: Any = 1e-5
) -> torch.Tensor:
    """Normalise each (sample, channel) over the spatial axes (biased variance)."""
    dims = list(range(2, x.ndim))
    mean = x.mean(dim=dims, keepdim=True)
    centred = x - mean
    variance = centred.square().mean(dim=dims, keepdim=True)
    y = centred / (variance + float(number(epsilon))).sqrt()
    if gamma is not None:
        y = y * _per_channel(gamma, x)
    if beta is not None:
        y = y + _per_channel(beta, x)
    return y


@register_op("layer_norm", rows=rows_on_axes("axes", default_all=True))
def layer_norm(
    x: torch.Tensor, axes: Any = None, gamma: Any = None, beta: Any = None, epsilon: Any = 1e-5
) -> torch.Tensor:
    """Normalise over ``axes`` (biased variance). gamma and beta have x's sizes on those axes,
    in axis order (whatever order ``axes`` lists them in), so they broadcast against x with
    1 on every other axis."""
    dims = sorted({a % x.ndim for a in ints(axes)}) if axes is not None else list(range(x.ndim))
    if dims:
        centred = x - x.mean(dim=dims, keepdim=True)
        variance = centred.square().mean(dim=dims, keepdim=True)
        y = centred / (variance + float(number(epsilon))).sqrt()
    else:  # no axes: every element is its own mean
        y = x - x
    shape = [x.shape[d] if d in dims else 1 for d in range(x.ndim)]
    if gamma is not None:
        y = y * as_tensor(gamma, x).float().reshape(shape)
    if beta is not None:
        y = y + as_tensor(beta, x).float().reshape(shape)
    return y


def _l2_norm_rows(view: OpView) -> str | None:
    if view.rank("x") <= 3:
        return f"l2_norm {view.name!r} of a rank-3 tensor normalises across the batch axis"
    return None


@register_op("l2_norm", rows=_l2_norm_rows)
def l2_norm(x: torch.Tensor, epsilon: Any = 1e-6) -> torch.Tensor:
    """x / sqrt(sum of squares + epsilon) over the last three axes (every leading axis is a
    batch axis)."""
    dims = list(range(x.ndim - 3, x.ndim))
    return x / (x.square().sum(dim=dims, keepdim=True) + float(number(epsilon))).sqrt()


def _lrn_check(view: OpView) -> list[str]:
    if not view.is_literal("size"):
        return [f"local_response_norm {view.name!r}: size computed at run time"]
    size = int(number(view.literal("size")))
    if size % 2 == 0:
        # An even window has no centre: which side gets the extra channel is not defined.
        name = view.name
        return [f"local_response_norm {name!r}: even size={size} is not supported (no centre)"]
    return []


@register_op("local_response_norm", rows=rows_per_sample, check=_lrn_check)
def local_response_norm(
    x: torch.Tensor, size: Any, alpha: Any = 1e-4, beta: Any = 0.75, k: Any = 1.0
) -> torch.Tensor:
    """x / (k + alpha / size * sum of x² over the ``size`` channels centred on each one
    (channels past either end count as zeros)) ** beta."""
    import torch.nn.functional as F

    size = int(number(size))
    half = (size - 1) // 2
    squares = x.square()
    # Sum over the channel window: pad the channel axis, then a 1-D sum along it.
    flat = squares.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)  # (N, S, C)
    padded = F.pad(flat, (half, half))
    sums = padded.unfold(-1, size, 1).sum(-1).transpose(1, 2).reshape(x.shape)
    divisor = (float(number(k)) + float(number(alpha)) / size * sums).pow(float(number(beta)))
    return x / divisor
