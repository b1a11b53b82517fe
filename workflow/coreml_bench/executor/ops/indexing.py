"""Indexing, slicing, sorting and rearranging ops: gather / scatter, slices, stack, fill,
cumsum, topk, one_hot, range, depth / space moves (``scatter_gather.py``,
``tensor_transformation.py``, ``tensor_operation.py`` of iOS15-iOS18).

Indices may be negative wherever MIL allows it (iOS15/16; iOS17+ calls them out of range,
undefined behaviour): they count from the end. Scatter ops apply their updates in index
order, so repeated indices accumulate (``add``, ``mul``, ...) or the last one wins
(``update``), the same on every device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .registry import (
    OpView,
    as_tensor,
    ints,
    number,
    one_of,
    register_op,
    rows_per_sample,
)

if TYPE_CHECKING:
    import torch

INT32_MAX = 2**31 - 1


def _like(*values: Any) -> torch.Tensor | None:
    """The first tensor among ``values`` (literals are made on its device)."""
    import torch

    for value in values:
        if isinstance(value, torch.Tensor):
            return value
        if isinstance(value, list):
            found = _like(*value)
            if found is not None:
                return found
    return None


def _index_tensor(indices: Any, like: torch.Tensor) -> torch.Tensor:
    return as_tensor(indices, like).to(like.device, dtype=_long())


def _long() -> Any:
    import torch

    return torch.long


def _wrap(index: torch.Tensor, size: int | torch.Tensor) -> torch.Tensor:
    """Negative indices count from the end."""
    import torch

    return torch.where(index < 0, index + size, index)


def _check_bounds(index: torch.Tensor, size: Any, op: str) -> None:
    """``validate_indices=True``: out-of-range indices are an error (never wrapped)."""
    import torch

    upper = torch.as_tensor(size, device=index.device)
    if index.numel() and bool(((index < 0) | (index >= upper)).any()):
        raise IndexError(f"{op}: indices out of range [0, {size}) with validate_indices=True")


def _prepare(index: torch.Tensor, size: Any, validate: Any, op: str) -> torch.Tensor:
    if validate:
        _check_bounds(index, size, op)
        return index
    return _wrap(index, size)


def _axis(axis: Any, rank: int) -> int:
    a = int(number(axis))
    return a + rank if a < 0 else a


def _literal_axis(view: OpView, key: str, default: int, rank: int) -> int | None:
    """The op's axis, normalised, or None when it is computed at run time."""
    if view.has(key) and not view.is_literal(key):
        return None
    value = view.literal(key, default)
    return _axis(value, rank) if rank else int(value)


def _rows_axis(
    key: str, default: int, rank_key: str = "x", extra: int = 0
) -> Callable[[OpView], str | None]:
    """Rows stay apart when the op works along one axis that is not the batch axis
    (``extra``: the output has that many more axes, as ``one_hot`` / ``stack``)."""

    def rule(view: OpView) -> str | None:
        rank = view.rank(rank_key) + extra
        axis = _literal_axis(view, key, default, rank)
        if axis is None:
            return f"{view.op} {view.name!r} computes its {key} at run time"
        if axis == 0:
            return f"{view.op} {view.name!r} acts on the batch axis ({key}={axis})"
        if not view.is_row(rank_key):
            return f"{view.op} {view.name!r}: {rank_key!r} does not carry the batch rows"
        return None

    return rule


# --------------------------------------------------------------------------- gather


def _gather_rows(view: OpView) -> str | None:
    rank = view.rank("x")
    axis = _literal_axis(view, "axis", 0, rank)
    batch_dims = view.literal("batch_dims", 0)
    if axis is None or batch_dims is None:
        return f"gather {view.name!r} computes its axis at run time"
    x_row, index_row = view.is_row("x"), view.is_row("indices")
    if x_row and index_row and batch_dims >= 1:
        return None  # each row gathers from its own row
    if x_row and not index_row and batch_dims == 0 and axis != 0:
        return None  # the same indices for every row, not along the batch axis
    if not x_row and index_row and batch_dims == 0 and axis == 0:
        return None  # a table looked up by each row's indices (embedding)
    return f"gather {view.name!r} mixes rows (axis={axis}, batch_dims={batch_dims})"


@register_op("gather", rows=_gather_rows, exact_fp16=True)
def gather(
    x: Any, indices: Any, axis: Any = 0, batch_dims: Any = 0, validate_indices: bool = False
) -> torch.Tensor:
    """``x`` at ``indices`` along ``axis``; the first ``batch_dims`` axes of ``x`` and
    ``indices`` are matched (iOS16+). Output shape D[:axis] + N[batch_dims:] + D[axis+1:]."""
    import torch

    like = _like(x, indices)
    x = as_tensor(x, like)
    index = _index_tensor(indices, x)
    axis = _axis(axis, x.ndim)
    batch_dims = int(number(batch_dims))
    index = _prepare(index, x.shape[axis], validate_indices, "gather")
    out_shape = [*x.shape[:axis], *index.shape[batch_dims:], *x.shape[axis + 1 :]]
    if batch_dims == 0:
        return x.index_select(axis, index.reshape(-1)).reshape(out_shape)
    batch = math.prod(x.shape[:batch_dims])
    before = math.prod(x.shape[batch_dims:axis])
    after = math.prod(x.shape[axis + 1 :])
    flat_x = x.reshape(batch, before, x.shape[axis], after)
    flat_index = index.reshape(batch, 1, -1, 1).expand(batch, before, -1, after)
    return torch.gather(flat_x, 2, flat_index).reshape(out_shape)


def _gather_along_rows(view: OpView) -> str | None:
    rank = view.rank("x")
    axis = _literal_axis(view, "axis", 0, rank)
    if axis is None:
        return f"gather_along_axis {view.name!r} computes its axis at run time"
    x_row, index_row = view.is_row("x"), view.is_row("indices")
    if x_row and index_row and axis != 0:
        return None
    if not x_row and index_row and axis == 0:
        return None
    return f"gather_along_axis {view.name!r} mixes rows (axis={axis})"


@register_op("gather_along_axis", rows=_gather_along_rows, exact_fp16=True)
def gather_along_axis(
    x: Any, indices: Any, axis: Any = 0, validate_indices: bool = False
) -> torch.Tensor:
    import torch

    like = _like(x, indices)
    x = as_tensor(x, like)
    index = _index_tensor(indices, x)
    axis = _axis(axis, x.ndim)
    index = _prepare(index, x.shape[axis], validate_indices, "gather_along_axis")
    return torch.gather(x, axis, index)


def _linear_index(index: torch.Tensor, dims: list[int], validate: Any, op: str) -> torch.Tensor:
    """indices[..., depth] into ``dims`` → one row-major index into prod(dims)."""
    linear = index.new_zeros(index.shape[:-1])
    for i, size in enumerate(dims):
        part = _prepare(index[..., i], size, validate, op)
        linear = linear * size + part
    return linear


def _gather_nd_rows(view: OpView) -> str | None:
    batch_dims = view.literal("batch_dims", 0)
    if view.is_row("x") and view.is_row("indices") and batch_dims is not None and batch_dims >= 1:
        return None
    if not view.is_row("x") and view.is_row("indices") and batch_dims == 0:
        return None
    return f"gather_nd {view.name!r} mixes rows (batch_dims={batch_dims})"


@register_op("gather_nd", rows=_gather_nd_rows, exact_fp16=True)
def gather_nd(
    x: Any, indices: Any, batch_dims: Any = 0, validate_indices: bool = False
) -> torch.Tensor:
    """output[i...] = x[b..., indices[b..., i..., :]]: V = K[:-1] + D[batch_dims + K[-1]:]."""
    import torch

    like = _like(x, indices)
    x = as_tensor(x, like)
    index = _index_tensor(indices, x)
    batch_dims = int(number(batch_dims))
    depth = index.shape[-1]
    batch = math.prod(x.shape[:batch_dims])
    dims = list(x.shape[batch_dims : batch_dims + depth])
    rest = list(x.shape[batch_dims + depth :])
    linear = _linear_index(index, dims, validate_indices, "gather_nd").reshape(batch, -1)
    flat_x = x.reshape(batch, math.prod(dims), *rest)
    rows = torch.arange(batch, device=x.device).unsqueeze(1)
    return flat_x[rows, linear].reshape(*index.shape[:-1], *rest)


# --------------------------------------------------------------------------- scatter

# Each combining mode, as the torch function of (current value, update); "update" replaces.
_SCATTER_COMBINE = {
    "add": "add", "sub": "sub", "mul": "mul", "div": "true_divide", "max": "maximum",
    "min": "minimum",
}  # fmt: skip
_SCATTER_MODES = ("update", *_SCATTER_COMBINE)


def _scatter_check(view: OpView) -> list[str]:
    reasons = one_of("mode", _SCATTER_MODES, "add")(view)
    data = view.inputs.get("data")
    dtype = getattr(data, "dtype", "")
    if view.literal("mode", "add") == "div" and dtype and not dtype.startswith("fp"):
        # Integer division's rounding (truncate or floor) is not defined by MIL.
        reasons.append(f"{view.op} {view.name!r}: mode 'div' on {dtype} data is not supported")
    return reasons


def _scatter_flat(
    data: torch.Tensor, target: torch.Tensor, values: torch.Tensor, mode: str
) -> torch.Tensor:
    """Apply ``values`` at flat positions ``target`` of ``data`` in order: repeated targets
    are handled in rounds, each round touching every position at most once."""
    import torch

    out = data.reshape(-1).clone()
    target = target.reshape(-1)
    values = values.reshape(-1).to(out.dtype)
    if target.numel() == 0:
        return out.reshape(data.shape)
    sorted_target, order = torch.sort(target, stable=True)
    position = torch.arange(target.numel(), device=target.device)
    starts = torch.ones_like(sorted_target, dtype=torch.bool)
    starts[1:] = sorted_target[1:] != sorted_target[:-1]
    group_start = torch.cummax(torch.where(starts, position, 0), dim=0).values
    occurrence = torch.empty_like(position)
    occurrence[order] = position - group_start  # how many earlier updates hit the same place
    combine = getattr(torch, _SCATTER_COMBINE.get(mode, "add"))
    for round_index in range(int(occurrence.max()) + 1):
        chosen = occurrence == round_index
        where, value = target[chosen], values[chosen]
        out[where] = value if mode == "update" else combine(out[where], value)
    return out.reshape(data.shape)


def _scatter_inputs(
    data: Any, indices: Any, updates: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    like = _like(data, updates, indices)
    data = as_tensor(data, like)
    updates = as_tensor(updates, data).to(data.device)
    return data, _index_tensor(indices, data), updates


def _scatter_rows(view: OpView) -> str | None:
    rank = view.rank("data")
    axis = _literal_axis(view, "axis", 0, rank)
    if axis is None or axis == 0:
        return f"scatter {view.name!r} acts on the batch axis"
    if view.is_row("data") and view.is_row("updates") and not view.is_row("indices"):
        return None
    return f"scatter {view.name!r}: data and updates must both carry the rows"


@register_op("scatter", rows=_scatter_rows, check=_scatter_check)
def scatter(
    data: Any,
    indices: Any,
    updates: Any,
    axis: Any = 0,
    mode: str = "add",
    validate_indices: bool = False,
) -> torch.Tensor:
    """updates[p, i, q] combined into data[p, indices[i], q] along ``axis``."""
    import torch

    data, index, updates = _scatter_inputs(data, indices, updates)
    axis = _axis(axis, data.ndim)
    size = data.shape[axis]
    index = _prepare(index.reshape(-1), size, validate_indices, "scatter")
    before, after = math.prod(data.shape[:axis]), math.prod(data.shape[axis + 1 :])
    device = data.device
    target = (
        torch.arange(before, device=device).view(-1, 1, 1) * size + index.view(1, -1, 1)
    ) * after
    target = target + torch.arange(after, device=device).view(1, 1, -1)
    return _scatter_flat(data, target, updates, mode)


def _scatter_along_rows(view: OpView) -> str | None:
    rank = view.rank("data")
    axis = _literal_axis(view, "axis", 0, rank)
    if axis is None or axis == 0:
        return f"scatter_along_axis {view.name!r} acts on the batch axis"
    if all(view.is_row(k) for k in ("data", "indices", "updates")):
        return None
    return f"scatter_along_axis {view.name!r}: data, indices and updates must all carry the rows"


@register_op("scatter_along_axis", rows=_scatter_along_rows, check=_scatter_check)
def scatter_along_axis(
    data: Any,
    indices: Any,
    updates: Any,
    axis: Any = 0,
    mode: str = "add",
    validate_indices: bool = False,
) -> torch.Tensor:
    """updates[p, i, q] combined into data[p, indices[p, i, q], q] along ``axis``."""
    import torch

    data, index, updates = _scatter_inputs(data, indices, updates)
    axis = _axis(axis, data.ndim)
    size = data.shape[axis]
    index = _prepare(index, size, validate_indices, "scatter_along_axis")
    before, after = math.prod(data.shape[:axis]), math.prod(data.shape[axis + 1 :])
    device = data.device
    index = index.reshape(before, -1, after)
    target = (torch.arange(before, device=device).view(-1, 1, 1) * size + index) * after
    target = target + torch.arange(after, device=device).view(1, 1, -1)
    return _scatter_flat(data, target, updates, mode)


@register_op("scatter_nd", check=_scatter_check)
def scatter_nd(
    data: Any, indices: Any, updates: Any, mode: str = "add", validate_indices: bool = False
) -> torch.Tensor:
    """updates[i..., r...] combined into data[indices[i..., :], r...]."""
    import torch

    data, index, updates = _scatter_inputs(data, indices, updates)
    depth = index.shape[-1]
    dims = list(data.shape[:depth])
    after = math.prod(data.shape[depth:])
    linear = _linear_index(index, dims, validate_indices, "scatter_nd").reshape(-1, 1)
    target = linear * after + torch.arange(after, device=data.device).view(1, -1)
    return _scatter_flat(data, target, updates, mode)


# --------------------------------------------------------------------------- slices


def _mask(value: Any, rank: int) -> list[bool]:
    if value is None:
        return [False] * rank
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [bool(v) for v in (value if isinstance(value, list) else [value])]


def _slice_plan(
    shape: list[int],
    begin: Any,
    end: Any,
    stride: Any,
    begin_mask: Any,
    end_mask: Any,
    squeeze_mask: Any,
) -> list[tuple[int, int, int, bool]]:
    """Per axis (start, stop, step, squeeze) as numpy would slice it
    (``x[begin:end:stride]``, masks and negative values included), resolved for ``shape``."""
    rank = len(shape)
    begins, ends = ints(begin), ints(end)
    strides = ints(stride) if stride is not None else [1] * rank
    begin_masks, end_masks = _mask(begin_mask, rank), _mask(end_mask, rank)
    squeeze_masks = _mask(squeeze_mask, rank)
    plan = []
    for i, size in enumerate(shape):
        first = None if begin_masks[i] else begins[i]
        last = None if end_masks[i] else ends[i]
        step = strides[i]
        if squeeze_masks[i]:
            # MIL picks begin[i] alone: an "infinite" stride from begin.
            last, step = None, INT32_MAX
        start, stop, step = slice(first, last, step).indices(size)
        plan.append((start, stop, step, squeeze_masks[i]))
    return plan


def _positive(start: int, stop: int, step: int) -> tuple[slice, bool]:
    """A slice with a positive step over the same positions, and whether to flip it."""
    count = len(range(start, stop, step))
    if step > 0:
        return slice(start, start + max(count - 1, 0) * step + 1 if count else start, step), False
    if count == 0:
        return slice(0, 0, 1), False
    last = start + (count - 1) * step
    return slice(last, start + 1, -step), True


def _view(
    x: torch.Tensor, plan: list[tuple[int, int, int, bool]]
) -> tuple[torch.Tensor, list[int], list[int]]:
    """x's sliced view with every axis kept (squeezed axes at size 1), the axes to flip and
    the axes to squeeze."""
    slices, flips, squeezes = [], [], []
    for axis, (start, stop, step, squeeze) in enumerate(plan):
        if squeeze:
            slices.append(slice(start, start + 1, 1))
            squeezes.append(axis)
            continue
        piece, flip = _positive(start, stop, step)
        slices.append(piece)
        if flip:
            flips.append(axis)
    return x[tuple(slices)], flips, squeezes


def _slice_by_index(
    x: torch.Tensor, begin: Any, end: Any, stride: Any = None, begin_mask: Any = None,
    end_mask: Any = None, squeeze_mask: Any = None, rows: bool = False,
) -> torch.Tensor:  # fmt: skip
    plan = _slice_plan(list(x.shape), begin, end, stride, begin_mask, end_mask, squeeze_mask)
    if rows:
        plan[0] = (0, x.shape[0], 1, False)  # the batch axis stays whole (see the rows rule)
    out, flips, squeezes = _view(x, plan)
    if flips:
        out = out.flip(flips)
    if squeezes:
        out = out.reshape([d for i, d in enumerate(out.shape) if i not in squeezes])
    return out


def _whole_batch_axis(view: OpView, plan: tuple[int, int, int, bool] | None) -> str | None:
    if plan is None:
        return f"{view.op} {view.name!r} computes its slice at run time"
    shape = view.shape("x")
    if not shape or shape[0] != 1:
        return f"{view.op} {view.name!r}: input {shape} has no batch axis of 1"
    start, stop, step, squeeze = plan
    if squeeze or step != 1 or len(range(start, stop, step)) != 1:
        return f"{view.op} {view.name!r} slices the batch axis"
    return None


def _slice_index_rows(view: OpView) -> str | None:
    keys = ("begin", "end", "stride", "begin_mask", "end_mask", "squeeze_mask")
    if any(view.has(k) and not view.is_literal(k) for k in keys) or not view.rank("x"):
        return _whole_batch_axis(view, None)
    rank = view.rank("x")
    plan = _slice_plan(
        [1] + [0] * (rank - 1), view.literal("begin"), view.literal("end"), view.literal("stride"),
        view.literal("begin_mask"), view.literal("end_mask"), view.literal("squeeze_mask"),
    )  # fmt: skip
    return _whole_batch_axis(view, plan[0])


def slice_by_index_rows(x: torch.Tensor, **inputs: Any) -> torch.Tensor:
    """``slice_by_index`` of N stacked rows: the batch axis stays whole."""
    return _slice_by_index(x, rows=True, **inputs)


@register_op(
    "slice_by_index",
    rows=_slice_index_rows,
    fresh=False,
    exact_fp16=True,
    batched=slice_by_index_rows,
)
def slice_by_index(
    x: torch.Tensor, begin: Any, end: Any, stride: Any = None, begin_mask: Any = None,
    end_mask: Any = None, squeeze_mask: Any = None,
) -> torch.Tensor:  # fmt: skip
    return _slice_by_index(x, begin, end, stride, begin_mask, end_mask, squeeze_mask)


def _size_slices(shape: list[int], begin: Any, size: Any) -> list[slice]:
    slices = []
    for dim, first, count in zip(shape, ints(begin), ints(size), strict=True):
        first = first + dim if first < 0 else first
        slices.append(slice(first, None) if count == -1 else slice(first, first + count))
    return slices


def _slice_size_rows(view: OpView) -> str | None:
    if not (view.is_literal("begin") and view.is_literal("size")) or not view.rank("x"):
        return _whole_batch_axis(view, None)
    first = _size_slices([1], ints(view.literal("begin"))[:1], ints(view.literal("size"))[:1])[0]
    return _whole_batch_axis(view, (*first.indices(1), False))


def slice_by_size_rows(x: torch.Tensor, begin: Any, size: Any) -> torch.Tensor:
    slices = _size_slices(list(x.shape), begin, size)
    slices[0] = slice(None)
    return x[tuple(slices)]


@register_op(
    "slice_by_size", rows=_slice_size_rows, fresh=False, exact_fp16=True, batched=slice_by_size_rows
)
def slice_by_size(x: torch.Tensor, begin: Any, size: Any) -> torch.Tensor:
    """x[begin : begin + size] per axis; size -1 takes the rest, negative begin counts from
    the end."""
    return x[tuple(_size_slices(list(x.shape), begin, size))]


def _slice_update_rows(view: OpView) -> str | None:
    if not (view.is_row("x") and view.is_row("update")):
        return f"slice_update {view.name!r}: x and update must both carry the rows"
    return _slice_index_rows(view)


def slice_update_rows(x: torch.Tensor, update: Any, **inputs: Any) -> torch.Tensor:
    return _slice_update(x, update, rows=True, **inputs)


def _slice_update(
    x: torch.Tensor, update: Any, begin: Any, end: Any, stride: Any = None, begin_mask: Any = None,
    end_mask: Any = None, squeeze_mask: Any = None, rows: bool = False,
) -> torch.Tensor:  # fmt: skip
    plan = _slice_plan(list(x.shape), begin, end, stride, begin_mask, end_mask, squeeze_mask)
    if rows:
        plan[0] = (0, x.shape[0], 1, False)
    out = x.clone()
    target, flips, _ = _view(out, plan)
    values = as_tensor(update, x).to(out.device, out.dtype).reshape(target.shape)
    target.copy_(values.flip(flips) if flips else values)
    return out


@register_op("slice_update", rows=_slice_update_rows, exact_fp16=True, batched=slice_update_rows)
def slice_update(
    x: torch.Tensor, update: Any, begin: Any, end: Any, stride: Any = None, begin_mask: Any = None,
    end_mask: Any = None, squeeze_mask: Any = None,
) -> torch.Tensor:  # fmt: skip
    """x with x[begin:end:stride] (as ``slice_by_index``) replaced by ``update``."""
    return _slice_update(x, update, begin, end, stride, begin_mask, end_mask, squeeze_mask)


# --------------------------------------------------------------------------- building tensors


def _stack_rows(view: OpView) -> str | None:
    values = view.inputs["values"]
    assert isinstance(values, list)
    rank = len(view.out_shapes[0])
    axis = view.literal("axis")
    if axis is None or int(axis) % rank == 0:
        return f"stack {view.name!r} stacks along the batch axis"
    if not all(v.kind in ("ref", "input") for v in values):
        return f"stack {view.name!r}: a constant operand would need repeating per row"
    return None


@register_op("stack", rows=_stack_rows, exact_fp16=True)
def stack(values: list[Any], axis: Any) -> torch.Tensor:
    import torch

    like = _like(values)
    tensors = [as_tensor(v, like) for v in values]
    if like is not None:
        tensors = [t.to(like.device) for t in tensors]
    if any(t.is_floating_point() for t in tensors):
        tensors = [t.float() for t in tensors]
    return torch.stack(tensors, dim=int(number(axis)))


@register_op("shape")
def shape(x: Any) -> torch.Tensor:
    import torch

    tensor = as_tensor(x)
    return torch.tensor(list(tensor.shape), dtype=torch.int32, device=tensor.device)


def _filled(size: list[int], value: Any, device: Any) -> torch.Tensor:
    """A tensor of ``value``, typed as MIL types it: bool, int32 or float (fp16 or fp32)."""
    import torch

    value = number(value)
    if isinstance(value, bool):
        dtype = torch.bool
    elif isinstance(value, int):
        dtype = torch.int32
    else:
        dtype = torch.float32
    return torch.full(size, value, dtype=dtype, device=device)


@register_op("fill")
def fill(shape: Any, value: Any = 0.0) -> torch.Tensor:
    """Note: with a literal ``shape`` the result is made on the CPU (nothing says where else)."""
    like = _like(shape, value)
    return _filled(ints(shape), value, like.device if like is not None else None)


def _fill_like_rows(view: OpView) -> str | None:
    if view.is_row("ref_tensor"):
        return None
    return f"fill_like {view.name!r}: its reference tensor does not carry the rows"


@register_op("fill_like", rows=_fill_like_rows)
def fill_like(ref_tensor: Any, value: Any = 0.0) -> torch.Tensor:
    ref = as_tensor(ref_tensor)
    return _filled(list(ref.shape), value, ref.device)


def _flatten_rows(view: OpView) -> str | None:
    rank = view.rank("x")
    axis = _literal_axis(view, "axis", 1, rank)
    if axis is None or axis == 0:
        return f"flatten2d {view.name!r} folds the batch axis into the others"
    return None  # the output's leading 1 (checked by the compiler) becomes N


@register_op("flatten2d", rows=_flatten_rows, fresh=False, exact_fp16=True)
def flatten2d(x: torch.Tensor, axis: Any = 1) -> torch.Tensor:
    """(prod(shape[:axis]), prod(shape[axis:])), negative axis counting from the end."""
    a = int(number(axis))
    return x.reshape(math.prod(x.shape[:a]), math.prod(x.shape[a:]))


def _reverse_rows(view: OpView) -> str | None:
    rank = view.rank("x")
    if view.has("axes") and not view.is_literal("axes"):
        return f"reverse {view.name!r} computes its axes at run time"
    axes = view.literal("axes")
    if axes is None:
        return f"reverse {view.name!r} reverses every axis, the batch axis too"
    if any(_axis(a, rank) == 0 for a in ints(axes)):
        return f"reverse {view.name!r} reverses the batch axis"
    return None


@register_op("reverse", rows=_reverse_rows, exact_fp16=True)
def reverse(x: torch.Tensor, axes: Any = None) -> torch.Tensor:
    dims = list(range(x.ndim)) if axes is None else [_axis(a, x.ndim) for a in ints(axes)]
    return x.flip(dims) if dims else x.clone()


def _reverse_sequence_rows(view: OpView) -> str | None:
    rank = view.rank("x")
    seq = _literal_axis(view, "seq_axis", 0, rank)
    batch = _literal_axis(view, "batch_axis", 0, rank)
    if seq is None or batch is None or seq == 0 or not view.is_row("x"):
        return f"reverse_sequence {view.name!r} reverses along the batch axis"
    if (batch == 0) == view.is_row("lengths"):
        return None  # lengths per row (batch_axis 0), or one set shared by every row
    return f"reverse_sequence {view.name!r}: its lengths do not follow the rows"


@register_op("reverse_sequence", rows=_reverse_sequence_rows, exact_fp16=True)
def reverse_sequence(
    x: torch.Tensor, lengths: Any, seq_axis: Any = 0, batch_axis: Any = 0
) -> torch.Tensor:
    """Along ``seq_axis``, the first lengths[b] elements of each slice b of ``batch_axis``
    reversed, the rest kept."""
    import torch

    seq, batch = _axis(seq_axis, x.ndim), _axis(batch_axis, x.ndim)
    length = _index_tensor(lengths, x).reshape(-1)
    steps = torch.arange(x.shape[seq], device=x.device)
    shape = [1] * x.ndim
    shape[batch], shape[seq] = length.numel(), x.shape[seq]
    span = length.view(-1, 1) if batch < seq else length.view(1, -1)
    position = steps.view(1, -1) if batch < seq else steps.view(-1, 1)
    index = torch.where(position < span, span - 1 - position, position).reshape(shape)
    return torch.gather(x, seq, index.expand(x.shape))


def _band_rows(view: OpView) -> str | None:
    if view.rank("x") >= 3 and view.is_row("x"):
        return None
    return f"band_part {view.name!r} masks a matrix whose rows are the batch axis"


@register_op("band_part", rows=_band_rows)
def band_part(x: torch.Tensor, lower: Any = -1, upper: Any = -1) -> torch.Tensor:
    """x times the band (m - n <= lower or lower < 0) and (n - m <= upper or upper < 0) of
    the last two axes (a product, as MIL defines it: inf or nan outside the band gives nan)."""
    import torch

    rows, cols = x.shape[-2], x.shape[-1]
    m = torch.arange(rows, device=x.device).view(-1, 1)
    n = torch.arange(cols, device=x.device).view(1, -1)
    low, up = int(number(lower)), int(number(upper))
    band = torch.ones(rows, cols, dtype=torch.bool, device=x.device)
    if low >= 0:
        band &= (m - n) <= low
    if up >= 0:
        band &= (n - m) <= up
    if x.dtype == torch.bool:
        return x & band
    return x * band.to(x.dtype)


@register_op("cumsum", rows=_rows_axis("axis", 0))
def cumsum(
    x: torch.Tensor, axis: Any = 0, exclusive: bool = False, reverse: bool = False
) -> torch.Tensor:
    import torch

    dim = _axis(axis, x.ndim)
    data = x.flip(dim) if reverse else x
    total = torch.cumsum(data, dim=dim, dtype=x.dtype)
    if exclusive:
        first = torch.zeros_like(total.narrow(dim, 0, 1))
        total = torch.cat([first, total.narrow(dim, 0, total.shape[dim] - 1)], dim=dim)
    return total.flip(dim) if reverse else total


def _sorted(x: torch.Tensor, axis: Any, ascending: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A stable sort: equal values keep their order (the lower index first)."""
    import torch

    return torch.sort(x, dim=_axis(axis, x.ndim), descending=not ascending, stable=True)


@register_op("topk", rows=_rows_axis("axis", -1), exact_fp16=True)
def topk(
    x: torch.Tensor, k: Any = 1, axis: Any = -1, ascending: bool = False, sort: bool = True,
    return_indices: bool = True, output_indices_dtype: str = "int32",
) -> Any:  # fmt: skip
    """The k largest (smallest, ``ascending``) along ``axis``, in order; k=-1 takes all.
    (``sort=False`` leaves the order free: they come sorted.)"""
    import torch

    dim = _axis(axis, x.ndim)
    values, indices = _sorted(x, dim, bool(ascending))
    count = int(number(k))
    if count != -1:
        values, indices = values.narrow(dim, 0, count), indices.narrow(dim, 0, count)
    if not return_indices:
        return values
    return values, indices.to(torch.int32)


@register_op("argsort", rows=_rows_axis("axis", -1))
def argsort(x: torch.Tensor, axis: Any = -1, ascending: bool = False) -> torch.Tensor:
    import torch

    return _sorted(x, axis, bool(ascending))[1].to(torch.int32)


@register_op("one_hot", rows=_rows_axis("axis", -1, rank_key="indices", extra=1))
def one_hot(
    indices: Any, one_hot_vector_size: Any, axis: Any = -1, on_value: Any = 1, off_value: Any = 0
) -> torch.Tensor:
    """on_value where the new ``axis`` position equals the index, off_value elsewhere
    (indices outside [0, size) give off_value only)."""
    import torch

    like = _like(indices, one_hot_vector_size)
    index = as_tensor(indices, like).long()
    size = int(number(one_hot_vector_size))
    dim = _axis(axis, index.ndim + 1)
    shape = [1] * (index.ndim + 1)
    shape[dim] = size
    hits = index.unsqueeze(dim) == torch.arange(size, device=index.device).view(shape)
    on, off = _filled([], on_value, index.device), _filled([], off_value, index.device)
    return torch.where(hits, on, off)


@register_op("range_1d")
def range_1d(end: Any, start: Any, step: Any) -> torch.Tensor:
    """[start, start + step, ...) up to ``end`` exclusive; int32 or float like the inputs."""
    import torch

    like = _like(end, start, step)
    values = [number(v) for v in (start, end, step)]
    floats = any(isinstance(v, float) for v in values) or (
        like is not None and like.is_floating_point()
    )
    device = like.device if like is not None else None
    if floats:
        return torch.arange(*map(float, values), dtype=torch.float64, device=device).float()
    return torch.arange(*map(int, values), dtype=torch.int32, device=device)


# --------------------------------------------------------------------------- depth / space


@register_op("pixel_shuffle", rows=rows_per_sample, fresh=False, exact_fp16=True)
def pixel_shuffle(x: torch.Tensor, upscale_factor: Any) -> torch.Tensor:
    import torch.nn.functional as F

    return F.pixel_shuffle(x, int(number(upscale_factor)))


@register_op("pixel_unshuffle", rows=rows_per_sample, fresh=False, exact_fp16=True)
def pixel_unshuffle(x: torch.Tensor, downscale_factor: Any) -> torch.Tensor:
    import torch.nn.functional as F

    return F.pixel_unshuffle(x, int(number(downscale_factor)))


@register_op("depth_to_space", rows=rows_per_sample, fresh=False, exact_fp16=True)
def depth_to_space(x: torch.Tensor, block_size: Any) -> torch.Tensor:
    """TensorFlow's order (DCR): out[n, c, h*b + i, w*b + j] = x[n, (i*b + j)*C' + c, h, w]."""
    b = int(number(block_size))
    n, c, h, w = x.shape
    blocks = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    return blocks.reshape(n, c // (b * b), h * b, w * b)


@register_op("space_to_depth", rows=rows_per_sample, fresh=False, exact_fp16=True)
def space_to_depth(x: torch.Tensor, block_size: Any) -> torch.Tensor:
    """The inverse of ``depth_to_space``:
    out[n, (i*b + j)*C + c, h, w] = x[n, c, h*b + i, w*b + j]."""
    b = int(number(block_size))
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
    return blocks.reshape(n, c * b * b, h // b, w // b)


@register_op("space_to_batch", exact_fp16=True)
def space_to_batch(x: torch.Tensor, block_shape: Any, paddings: Any) -> torch.Tensor:
    """TensorFlow's space_to_batch_nd on (N, C, H, W): zero-pad H and W, then block offset
    (i, j) of sample n goes to batch (i*b1 + j)*N + n."""
    import torch.nn.functional as F

    b0, b1 = ints(block_shape)
    top, bottom, left, right = ints(paddings)
    padded = F.pad(x, [left, right, top, bottom])
    n, c, h, w = padded.shape
    blocks = padded.reshape(n, c, h // b0, b0, w // b1, b1).permute(3, 5, 0, 1, 2, 4)
    return blocks.reshape(n * b0 * b1, c, h // b0, w // b1)


@register_op("batch_to_space", fresh=False, exact_fp16=True)
def batch_to_space(x: torch.Tensor, block_shape: Any, crops: Any) -> torch.Tensor:
    """The inverse of ``space_to_batch``, then ``crops`` cut from H and W."""
    b0, b1 = ints(block_shape)
    top, bottom, left, right = ints(crops)
    n, c, h, w = x.shape
    batch = n // (b0 * b1)
    blocks = x.reshape(b0, b1, batch, c, h, w).permute(2, 3, 4, 0, 5, 1)
    full = blocks.reshape(batch, c, h * b0, w * b1)
    return full[:, :, top : h * b0 - bottom, left : w * b1 - right]


@register_op("sliding_windows", rows=_rows_axis("axis", 0), fresh=False, exact_fp16=True)
def sliding_windows(x: torch.Tensor, axis: Any, size: Any, stride: Any = 1) -> torch.Tensor:
    """out[..., i, k, ...] = x[..., i*stride + k, ...]: (d - size) // stride + 1 windows."""
    dim = _axis(axis, x.ndim)
    windows = x.unfold(dim, int(number(size)), int(number(stride)))
    return windows.movedim(-1, dim + 1)


@register_op("non_zero")
def non_zero(x: torch.Tensor) -> torch.Tensor:
    """Indices (int32, row-major order) of the non-zero elements: shape (count, rank). The
    count depends on the values, so the result's shape is known only at run time."""
    import torch

    return torch.nonzero(x).to(torch.int32)
