"""Tensor shape ops: reshape, transpose, squeeze, concat, split, tile, pad, upsampling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import UnsupportedOpError, as_tensor, int_list, register_op, scalar, torch_pad

if TYPE_CHECKING:
    import torch


def _batched_shape(shape: list[int], x: torch.Tensor, batch: int) -> list[int]:
    """The program was converted for batch 1: a target shape led by that 1 takes the batch."""
    if batch != 1 and shape and shape[0] == 1 and x.shape[0] == batch:
        return [batch, *shape[1:]]
    return shape


@register_op("reshape")
def _reshape(a: dict[str, Any], batch: int) -> torch.Tensor:
    x = a["x"]
    return x.reshape(_batched_shape(int_list(a["shape"]), x, batch))


@register_op("transpose")
def _transpose(a: dict[str, Any], batch: int) -> torch.Tensor:
    return a["x"].permute(int_list(a["perm"]))


@register_op("squeeze")
def _squeeze(a: dict[str, Any], batch: int) -> torch.Tensor:
    x = a["x"]
    axes = a.get("axes")
    if axes is None:
        return x.squeeze()
    for axis in sorted((d % x.ndim for d in int_list(axes)), reverse=True):
        x = x.squeeze(axis)
    return x


@register_op("expand_dims")
def _expand_dims(a: dict[str, Any], batch: int) -> torch.Tensor:
    x = a["x"]
    rank = x.ndim + len(int_list(a["axes"]))
    for axis in sorted(d % rank for d in int_list(a["axes"])):
        x = x.unsqueeze(axis)
    return x


@register_op("concat")
def _concat(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch

    values = a["values"]
    like = next(v for v in values if isinstance(v, torch.Tensor))
    if bool(scalar(a.get("interleave", False))):
        raise UnsupportedOpError("concat with interleave=True is not supported")
    return torch.cat([as_tensor(v, like) for v in values], dim=int(scalar(a["axis"])))


@register_op("split")
def _split(a: dict[str, Any], batch: int) -> tuple[torch.Tensor, ...]:
    x = a["x"]
    axis = int(scalar(a["axis"]))
    if a.get("split_sizes") is not None:
        return tuple(x.split(int_list(a["split_sizes"]), dim=axis))
    return tuple(x.chunk(int(scalar(a["num_splits"])), dim=axis))


@register_op("tile")
def _tile(a: dict[str, Any], batch: int) -> torch.Tensor:
    return a["x"].repeat(int_list(a["reps"]))


@register_op("pad")
def _pad(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch.nn.functional as F

    x = a["x"]
    mode = str(scalar(a.get("mode", "constant")))
    pads = torch_pad(int_list(a["pad"]))
    if mode == "constant":
        return F.pad(x, pads, value=float(scalar(a.get("constant_val", 0.0))))
    return F.pad(x, pads, mode={"reflect": "reflect", "replicate": "replicate"}[mode])


@register_op("upsample_nearest_neighbor")
def _upsample_nearest(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch.nn.functional as F

    scale = (float(scalar(a["scale_factor_height"])), float(scalar(a["scale_factor_width"])))
    return F.interpolate(a["x"], scale_factor=scale, mode="nearest")
