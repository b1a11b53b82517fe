"""Normalisation: batch_norm and layer_norm."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import as_tensor, int_list, register_op, scalar

if TYPE_CHECKING:
    import torch


def _channel_shape(x: torch.Tensor) -> list[int]:
    return [1, -1] + [1] * (x.ndim - 2)


@register_op("batch_norm")
def _batch_norm(a: dict[str, Any], batch: int) -> torch.Tensor:
    x = a["x"]
    shape = _channel_shape(x)
    mean, variance = as_tensor(a["mean"], x).view(shape), as_tensor(a["variance"], x).view(shape)
    y = (x - mean) / (variance + float(scalar(a.get("epsilon", 1e-5)))).sqrt()
    if a.get("gamma") is not None:
        y = y * as_tensor(a["gamma"], x).view(shape)
    if a.get("beta") is not None:
        y = y + as_tensor(a["beta"], x).view(shape)
    return y


@register_op("layer_norm")
def _layer_norm(a: dict[str, Any], batch: int) -> torch.Tensor:
    x = a["x"]
    axes = int_list(a.get("axes", list(range(x.ndim))))
    mean = x.mean(dim=axes, keepdim=True)
    variance = ((x - mean) ** 2).mean(dim=axes, keepdim=True)
    y = (x - mean) / (variance + float(scalar(a.get("epsilon", 1e-5)))).sqrt()
    if a.get("gamma") is not None:
        y = y * as_tensor(a["gamma"], x)
    if a.get("beta") is not None:
        y = y + as_tensor(a["beta"], x)
    return y
