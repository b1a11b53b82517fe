"""Tensor shape ops: reshape, transpose, squeeze, concat, split, tile, pad, upsampling
(``tensor_transformation.py``, ``tensor_operation.py``, ``image_resizing.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import (
    OpView,
    as_tensor,
    ints,
    number,
    one_of,
    register_op,
    rows_on_axes,
    rows_per_sample,
    torch_pad,
)

if TYPE_CHECKING:
    import torch


def _target(x: torch.Tensor, shape: Any) -> list[int]:
    """MIL target shape: -1 is inferred; 0 copies x's dimension counted from the right
    (iOS17: shape[i] matches x.shape[j] where len(shape) - i == rank(x) - j, and a 0 with no
    such dimension is 1). iOS15/16 allow 0 only when the ranks match, where both agree."""
    target = ints(shape)
    offset = x.ndim - len(target)
    return [
        (x.shape[i + offset] if i + offset >= 0 else 1) if d == 0 else d
        for i, d in enumerate(target)
    ]


def _reshape_rows(view: OpView) -> str | None:
    shape = view.shape("x")
    target = view.literal("shape")
    if target is None:
        return f"reshape {view.name!r} computes its shape at run time"
    target = ints(target)
    if not shape or shape[0] != 1 or not target or target[0] not in (1, 0) or target.count(-1) > 1:
        return f"reshape {view.name!r} {shape} → {target} folds the batch axis"
    return None


def _reshape_folded_rows(view: OpView) -> str | None:
    """A reshape only re-reads row-major memory, where N stacked rows are N consecutive
    blocks whether axis 0 holds the batch alone or folded with another axis: with every
    target dimension literal, the target's axis 0 times N is again N such blocks."""
    target = view.literal("shape")
    if target is None:
        return f"reshape {view.name!r} computes its shape at run time"
    target = ints(target)
    if not target or 0 in target or -1 in target:
        return f"reshape {view.name!r} → {target} folds the batch axis with inferred dimensions"
    return None


def reshape_rows(x: torch.Tensor, shape: Any) -> torch.Tensor:
    """``reshape`` of N stacked rows: the target's axis 0 becomes N times itself (its
    leading 1 becomes N)."""
    target = _target(x[:1], shape)
    if -1 in target[1:]:
        return x.reshape(x.shape[0], *target[1:])  # only from and to a leading batch axis
    return x.reshape(-1, *target[1:])


@register_op(
    "reshape",
    rows=_reshape_rows,
    folded_rows=_reshape_folded_rows,
    fresh=False,
    exact_fp16=True,
    batched=reshape_rows,
)
def reshape(x: torch.Tensor, shape: Any) -> torch.Tensor:
    return x.reshape(_target(x, shape))


def _perm_rows(view: OpView) -> str | None:
    perm = view.literal("perm")
    if perm is None or ints(perm)[0] % max(view.rank("x"), 1) != 0:
        return f"transpose {view.name!r} moves the batch axis"
    return None


@register_op("transpose", rows=_perm_rows, folded_rows=_perm_rows, fresh=False, exact_fp16=True)
def transpose(x: torch.Tensor, perm: Any) -> torch.Tensor:
    return x.permute(ints(perm))


@register_op("squeeze", rows=rows_on_axes("axes", default_all=True), fresh=False, exact_fp16=True)
def squeeze(x: torch.Tensor, axes: Any = None) -> torch.Tensor:
    if axes is None:
        return x.squeeze()
    for axis in sorted((d % x.ndim for d in ints(axes)), reverse=True):
        x = x.squeeze(axis)
    return x


def _expand_rows(view: OpView) -> str | None:
    rank = view.rank("x") + len(ints(view.literal("axes", [0])))
    if any(a % rank == 0 for a in ints(view.literal("axes", [0]))):
        return f"expand_dims {view.name!r} inserts an axis before the batch axis"
    return None


@register_op("expand_dims", rows=_expand_rows, fresh=False, exact_fp16=True)
def expand_dims(x: torch.Tensor, axes: Any) -> torch.Tensor:
    rank = x.ndim + len(ints(axes))
    for axis in sorted(d % rank for d in ints(axes)):
        x = x.unsqueeze(axis)
    return x


def _concat_rows(view: OpView) -> str | None:
    values = view.inputs["values"]
    assert isinstance(values, list)
    rank = len(view.out_shapes[0])
    axis = view.literal("axis")
    if axis is None or int(axis) % rank == 0:
        return f"concat {view.name!r} joins along the batch axis"
    for value in values:
        if value.kind not in ("ref", "input"):
            # A stored or literal operand (shape (1, ...)) would need repeating per row.
            return f"concat {view.name!r}: constant operand {value.shape} is not per row"
    return None


@register_op("concat", rows=_concat_rows, exact_fp16=True)
def concat(values: list[Any], axis: Any, interleave: bool = False) -> torch.Tensor:
    """Join along ``axis``; ``interleave`` alternates slices of equal-shaped inputs
    (output[i::n] = values[i])."""
    import torch

    like = next(v for v in values if isinstance(v, torch.Tensor))
    tensors = [as_tensor(v, like) for v in values]
    if tensors[0].is_floating_point():
        tensors = [t.float() for t in tensors]
    dim = int(number(axis))
    if tensors[0].ndim == 0:
        # Scalars concatenate into a vector (MIL: each counts as length 1).
        return torch.stack(tensors)
    if not interleave:
        return torch.cat(tensors, dim=dim)
    stacked = torch.stack(tensors, dim=(dim % tensors[0].ndim) + 1)
    shape = list(tensors[0].shape)
    shape[dim] *= len(tensors)
    return stacked.reshape(shape)


@register_op("split", rows=rows_on_axes("axis", default_all=False), fresh=False, exact_fp16=True)
def split(
    x: torch.Tensor, axis: Any, num_splits: Any = None, split_sizes: Any = None
) -> tuple[torch.Tensor, ...]:
    dim = int(number(axis))
    if split_sizes is not None:
        return tuple(x.split(ints(split_sizes), dim=dim))
    # Even parts (MIL requires num_splits to divide the axis; chunk may return fewer parts).
    return tuple(x.split(x.shape[dim] // int(number(num_splits)), dim=dim))


def _tile_rows(view: OpView) -> str | None:
    reps = view.literal("reps")
    if reps is None or ints(reps)[0] != 1:
        return f"tile {view.name!r} repeats along the batch axis"
    return None


@register_op("tile", rows=_tile_rows, exact_fp16=True)
def tile(x: torch.Tensor, reps: Any) -> torch.Tensor:
    return x.repeat(ints(reps))


def _pad_rows(view: OpView) -> str | None:
    pad = view.literal("pad")
    rank = view.rank("x")
    if pad is None:
        return f"pad {view.name!r} computes its padding at run time"
    pads = ints(pad)
    if len(pads) == 2 * rank and (pads[0] or pads[1]):
        return f"pad {view.name!r} pads the batch axis"
    return None


def _pad_check(view: OpView) -> list[str]:
    reasons = one_of("mode", ("constant", "reflect", "replicate"), "constant")(view)
    pad = view.literal("pad")
    mode = view.literal("mode", "constant")
    if mode != "constant" and pad is not None and len(_padded_axes(ints(pad))) > 3:
        reasons.append(f"pad {view.name!r}: {view.literal('mode')} padding of more than 3 axes")
    return reasons


def _padded_axes(pads: list[int]) -> list[int]:
    """Indices (from the end, 1 = last) of the trailing axes ``pads`` pads, innermost set."""
    pairs = [pads[i : i + 2] for i in range(0, len(pads), 2)]
    first = next((i for i, p in enumerate(pairs) if any(p)), len(pairs) - 1)
    return list(range(len(pairs) - first, 0, -1))


@register_op("pad", rows=_pad_rows, check=_pad_check)
def pad(x: torch.Tensor, pad: Any, mode: str = "constant", constant_val: Any = 0.0) -> torch.Tensor:
    """``pad`` lists (before, after) for the last len(pad)/2 axes, first axis first.

    torch pads reflect/replicate only over the last 1-3 axes of a (batch, channel, ...)
    tensor, so every axis before the padded ones is folded into the channel axis."""
    import torch.nn.functional as F

    pads = ints(pad)
    if mode == "constant":
        return F.pad(x, torch_pad(pads), value=float(number(constant_val)))
    m = len(_padded_axes(pads))
    inner = pads[len(pads) - 2 * m :]
    lead, tail = x.shape[: x.ndim - m], x.shape[x.ndim - m :]
    out = F.pad(x.reshape(1, -1, *tail), torch_pad(inner), mode=mode)
    return out.reshape(*lead, *out.shape[2:])


@register_op("upsample_nearest_neighbor", rows=rows_per_sample, exact_fp16=True)
def upsample_nearest_neighbor(
    x: torch.Tensor, scale_factor_height: Any = 1, scale_factor_width: Any = 1
) -> torch.Tensor:
    """The last two axes of a rank >= 3 tensor scaled, every axis before them kept: output
    size floor(size * scale), source index floor(i / scale) (torch's nearest)."""
    import torch.nn.functional as F

    scale = (float(number(scale_factor_height)), float(number(scale_factor_width)))
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    out = F.interpolate(x.reshape(-1, 1, h, w), scale_factor=scale, mode="nearest")
    return out.reshape(*lead, *out.shape[-2:])


@register_op("identity", rows=rows_per_sample, fresh=False, exact_fp16=True)
def identity(x: Any) -> Any:
    return x
