"""Conformance cases: indexing, slicing, sorting and rearranging ops (``scatter_gather.py``,
``tensor_transformation.py``, ``tensor_operation.py``, iOS15-iOS18).

Where MIL has no value inference (gather_nd, scatter, one_hot, the depth / space moves, ...)
or a wrong one (cumsum ``exclusive``, scatter_along_axis outside mode ``update``), the
reference is numpy from the op's documented formula; scatter references apply updates one
by one in index order.
"""

from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from mil_conformance import Case, Refusal, lit

rng = np.random.default_rng(1)
FP32 = ("fp32",)


def normal(*shape: int) -> np.ndarray:
    return (rng.normal(size=shape) * 3).astype(np.float32)


def distinct(*shape: int) -> np.ndarray:
    """Values exact in fp16 and all different (sorting has no ties)."""
    return (rng.permutation(int(np.prod(shape))) * 0.5 - 7).reshape(shape).astype(np.float32)


def i32(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


X3 = normal(4, 3, 5)
X4 = normal(2, 3, 4, 5)
INTS = i32(rng.integers(-50, 50, size=(3, 4)))

# --------------------------------------------------------------------------- references


def ref_gather_nd(x: np.ndarray, indices: np.ndarray, batch_dims: int = 0) -> np.ndarray:
    depth = indices.shape[-1]
    batch = int(np.prod(x.shape[:batch_dims]))
    flat_x = x.reshape(batch, *x.shape[batch_dims:])
    flat_i = indices.reshape(batch, -1, depth)
    out = np.stack(
        [np.stack([xb[tuple(i)] for i in ib]) for xb, ib in zip(flat_x, flat_i, strict=True)]
    )
    return out.reshape(*indices.shape[:-1], *x.shape[batch_dims + depth :])


_COMBINE = {
    "update": lambda old, new: new,
    "add": lambda old, new: old + new,
    "sub": lambda old, new: old - new,
    "mul": lambda old, new: old * new,
    "div": lambda old, new: old / new,
    "max": np.maximum,
    "min": np.minimum,
}


def ref_scatter(data, indices, updates, axis=0, mode="add"):
    out = data.copy()
    moved_out = np.moveaxis(out, axis, 0)
    moved_updates = np.moveaxis(updates, axis, 0)
    for i, index in enumerate(indices.reshape(-1)):
        moved_out[index] = _COMBINE[mode](moved_out[index], moved_updates[i])
    return out


def ref_scatter_along_axis(data, indices, updates, axis=0, mode="add"):
    out = data.copy()
    for position in np.ndindex(*indices.shape):
        target = list(position)
        target[axis] = indices[position]
        out[tuple(target)] = _COMBINE[mode](out[tuple(target)], updates[position])
    return out


def ref_scatter_nd(data, indices, updates, mode="add"):
    out = data.copy()
    for position in np.ndindex(*indices.shape[:-1]):
        target = tuple(indices[position])
        out[target] = _COMBINE[mode](out[target], updates[position])
    return out


def ref_reverse_sequence(x, lengths, seq_axis, batch_axis):
    out = x.copy()
    for b, length in enumerate(lengths):
        where = [slice(None)] * x.ndim
        where[batch_axis] = b
        where[seq_axis] = slice(0, length)
        out[tuple(where)] = np.flip(x[tuple(where)], axis=seq_axis - (seq_axis > batch_axis))
    return out


def ref_cumsum(x, axis=0, exclusive=False, reverse=False):
    data = np.flip(x, axis) if reverse else x
    total = np.cumsum(data, axis=axis)
    if exclusive:
        total = np.concatenate(
            [np.zeros_like(np.take(total, [0], axis)), np.delete(total, -1, axis)], axis
        )
    return np.flip(total, axis) if reverse else total


def ref_one_hot(indices, size, axis=-1, on=1, off=0):
    axis = axis + indices.ndim + 1 if axis < 0 else axis
    positions = np.arange(size).reshape([size if i == axis else 1 for i in range(indices.ndim + 1)])
    return np.where(np.expand_dims(indices, axis) == positions, on, off)


def ref_depth_to_space(x, b):
    n, c, h, w = x.shape
    return (
        x.reshape(n, b, b, c // b // b, h, w)
        .transpose(0, 3, 4, 1, 5, 2)
        .reshape(n, c // b // b, h * b, w * b)
    )


def ref_space_to_depth(x, b):
    n, c, h, w = x.shape
    return (
        x.reshape(n, c, h // b, b, w // b, b)
        .transpose(0, 3, 5, 1, 2, 4)
        .reshape(n, c * b * b, h // b, w // b)
    )


def ref_pixel_shuffle(x, f):
    n, c, h, w = x.shape
    return (
        x.reshape(n, c // f // f, f, f, h, w)
        .transpose(0, 1, 4, 2, 5, 3)
        .reshape(n, c // f // f, h * f, w * f)
    )


def ref_pixel_unshuffle(x, f):
    n, c, h, w = x.shape
    return (
        x.reshape(n, c, h // f, f, w // f, f)
        .transpose(0, 1, 3, 5, 2, 4)
        .reshape(n, c * f * f, h // f, w // f)
    )


def ref_sliding_windows(x, axis, size, stride=1):
    axis = axis % x.ndim
    count = (x.shape[axis] - size) // stride + 1
    windows = [np.take(x, range(i * stride, i * stride + size), axis=axis) for i in range(count)]
    return np.stack(windows, axis=axis)


# Core ML's own outputs for space_to_batch / batch_to_space (coremltools' backend tests).
S2B_IN = np.arange(1, 17, dtype=np.float32).reshape(2, 1, 2, 4)
S2B_OUT = np.array(
    [[[[0, 1, 3]]], [[[0, 9, 11]]], [[[0, 2, 4]]], [[[0, 10, 12]]],
     [[[0, 5, 7]]], [[[0, 13, 15]]], [[[0, 6, 8]]], [[[0, 14, 16]]]],
    dtype=np.float32,
)  # fmt: skip


def ref_space_to_batch(x, block, pads):
    (top, bottom), (left, right) = pads
    padded = np.pad(x, [(0, 0), (0, 0), (top, bottom), (left, right)])
    n, c, h, w = padded.shape
    b0, b1 = block
    out = padded.reshape(n, c, h // b0, b0, w // b1, b1).transpose(3, 5, 0, 1, 2, 4)
    return out.reshape(n * b0 * b1, c, h // b0, w // b1)


# --------------------------------------------------------------------------- cases

GATHER = [
    Case(
        "gather",
        "axis=0 1-D indices",
        {"x": X3, "indices": i32([2, 0, 3])},
        lambda x, indices: mb.gather(x=x, indices=indices, axis=0),
        exact=True,
    ),
    Case(
        "gather",
        "axis=1 2-D indices",
        {"x": X3, "indices": i32([[2, 0], [1, 1]])},
        lambda x, indices: mb.gather(x=x, indices=indices, axis=1),
        exact=True,
    ),
    Case(
        "gather",
        "axis=-1 negative indices",
        {"x": X3, "indices": i32([-1, 0, -5, 2])},
        lambda x, indices: mb.gather(x=x, indices=indices, axis=-1),
        exact=True,
        opset="iOS16",
    ),
    Case(
        "gather",
        "default axis, stored indices",
        {"x": X3},
        lambda x: mb.gather(x=x, indices=i32([[3, 1], [0, 0]])),
        exact=True,
    ),
    Case(
        "gather",
        "scalar index axis=1",
        {"x": X3},
        lambda x: mb.gather(x=x, indices=np.int32(2), axis=1),
        exact=True,
    ),
    Case(
        "gather",
        "batch_dims=1 axis=1",
        {"x": normal(2, 4, 3), "indices": i32([[0, 3, 1, 1, 2], [3, 2, 0, 0, 1]])},
        lambda x, indices: mb.gather(x=x, indices=indices, axis=1, batch_dims=1),
        exact=True,
    ),
    Case(
        "gather",
        "batch_dims=1 axis=2",
        {"x": normal(2, 3, 4), "indices": i32([[3, 0], [1, 2]])},
        lambda x, indices: mb.gather(x=x, indices=indices, axis=2, batch_dims=1),
        exact=True,
    ),
    Case(
        "gather",
        "batch_dims=2 axis=-2",
        {"x": X4, "indices": i32(rng.integers(0, 4, size=(2, 3, 2)))},
        lambda x, indices: mb.gather(x=x, indices=indices, axis=-2, batch_dims=2),
        # MIL's value inference takes axis - batch_dims without normalising a negative axis.
        lambda x, indices: np.stack(
            [
                np.stack([np.take(x[a, b], indices[a, b], axis=0) for b in range(3)])
                for a in range(2)
            ]
        ),
        exact=True,
    ),
    Case(
        "gather",
        "int32 x",
        {"x": INTS, "indices": i32([3, 0])},
        lambda x, indices: mb.gather(x=x, indices=indices, axis=1),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "gather",
        "validate_indices=True",
        {"x": X3, "indices": i32([4, 0, 2])},
        lambda x, indices: mb.gather(x=x, indices=indices, axis=2, validate_indices=True),
        exact=True,
    ),
    Case(
        "gather",
        "iOS15, negative indices",
        {"x": X3, "indices": i32([-1, -4])},
        lambda x, indices: mb.gather(x=x, indices=indices, axis=0),
        exact=True,
        opset="iOS15",
    ),
    Case(
        "gather",
        "embedding: stored table, indices input",
        {"indices": i32([[3, 0, 2, 2]])},
        lambda indices: mb.gather(
            x=np.arange(20, dtype=np.float32).reshape(5, 4), indices=indices, axis=0
        ),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "gather",
        "literal int table (a shape), computed indices",
        {"indices": i32([[2, 0, -1]])},
        lambda indices: mb.gather(x=i32([10, 20, 30, 40]), indices=indices),
        exact=True,
        dtypes=FP32,
        opset="iOS16",
    ),
    Case(
        "gather_along_axis",
        "axis=0",
        {"x": X3, "indices": i32(rng.integers(0, 4, size=(2, 3, 5)))},
        lambda x, indices: mb.gather_along_axis(x=x, indices=indices),
        exact=True,
    ),
    Case(
        "gather_along_axis",
        "axis=1",
        {"x": X3, "indices": i32(rng.integers(0, 3, size=(4, 6, 5)))},
        lambda x, indices: mb.gather_along_axis(x=x, indices=indices, axis=1),
        exact=True,
    ),
    Case(
        "gather_along_axis",
        "axis=-1 negative indices",
        {"x": X3, "indices": i32(rng.integers(-5, 5, size=(4, 3, 2)))},
        lambda x, indices: mb.gather_along_axis(x=x, indices=indices, axis=-1),
        exact=True,
        opset="iOS16",
    ),
    Case(
        "gather_along_axis",
        "int32 x, validate_indices",
        {"x": INTS, "indices": i32([[1, 0], [2, 2], [3, 0]])},
        lambda x, indices: mb.gather_along_axis(
            x=x, indices=indices, axis=1, validate_indices=True
        ),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "gather_nd",
        "depth 2 of rank 3",
        {"x": X3, "indices": i32([[1, 0], [3, 2], [0, 0]])},
        lambda x, indices: mb.gather_nd(x=x, indices=indices),
        ref_gather_nd,
        exact=True,
    ),
    Case(
        "gather_nd",
        "depth 3 (elements)",
        {"x": X3, "indices": i32([[[1, 0, 4]], [[3, 2, 0]]])},
        lambda x, indices: mb.gather_nd(x=x, indices=indices),
        ref_gather_nd,
        exact=True,
    ),
    Case(
        "gather_nd",
        "depth 1",
        {"x": X3, "indices": i32([[2], [0]])},
        lambda x, indices: mb.gather_nd(x=x, indices=indices),
        ref_gather_nd,
        exact=True,
    ),
    Case(
        "gather_nd",
        "batch_dims=1",
        {"x": normal(2, 3, 4), "indices": i32([[[1], [2], [0]], [[0], [0], [2]]])},
        lambda x, indices: mb.gather_nd(x=x, indices=indices, batch_dims=1),
        lambda x, indices: ref_gather_nd(x, indices, 1),
        exact=True,
    ),
    Case(
        "gather_nd",
        "batch_dims=1 depth 2",
        {"x": X4, "indices": i32([[[1, 3], [2, 0]], [[0, 0], [2, 3]]])},
        lambda x, indices: mb.gather_nd(x=x, indices=indices, batch_dims=1),
        lambda x, indices: ref_gather_nd(x, indices, 1),
        exact=True,
    ),
    Case(
        "gather_nd",
        "iOS15 negative indices, int32",
        {"x": INTS, "indices": i32([[-1, 0], [1, -2]])},
        lambda x, indices: mb.gather_nd(x=x, indices=indices),
        ref_gather_nd,
        exact=True,
        dtypes=FP32,
        opset="iOS15",
    ),
]

DATA = normal(4, 3, 2)
POSITIVE = (np.abs(normal(4, 3, 2)) + 0.5).astype(np.float32)


def _scatter_case(mode: str, label: str = "") -> Case:
    data = POSITIVE if mode == "div" else DATA
    updates = (
        (np.abs(normal(3, 3, 2)) + 0.5).astype(np.float32)
        if mode in ("div", "mul")
        else normal(3, 3, 2)
    )
    return Case(
        "scatter", f"mode={mode} axis=0 repeated index{label}",
        {"data": data, "indices": i32([1, 3, 1]), "updates": updates},
        lambda data, indices, updates: mb.scatter(
            data=data, indices=indices, updates=updates, mode=mode),
        lambda data, indices, updates: ref_scatter(data, indices, updates, 0, mode),
        exact=mode in ("update", "max", "min"),
    )  # fmt: skip


def _scatter_along_case(mode: str) -> Case:
    indices = i32([[[0, 2], [1, 1], [2, 0]], [[2, 2], [0, 1], [2, 2]]])
    updates = normal(2, 3, 2)
    if mode in ("mul", "div"):
        updates = (np.abs(updates) + 0.5).astype(np.float32)
    data = POSITIVE if mode == "div" else DATA
    reference = (
        None
        if mode == "update"
        else (
            lambda data, indices, updates: ref_scatter_along_axis(data, indices, updates, 1, mode)
        )
    )
    return Case(
        "scatter_along_axis", f"mode={mode} axis=1",
        {"data": data[:2], "indices": indices, "updates": updates},
        lambda data, indices, updates: mb.scatter_along_axis(
            data=data, indices=indices, updates=updates, axis=1, mode=mode),
        reference, exact=mode in ("update", "max", "min"),
    )  # fmt: skip


def _scatter_nd_case(mode: str) -> Case:
    updates = normal(3, 2)
    if mode in ("mul", "div"):
        updates = (np.abs(updates) + 0.5).astype(np.float32)
    data = POSITIVE if mode == "div" else DATA
    return Case(
        "scatter_nd", f"mode={mode} depth 2, repeated index",
        {"data": data, "indices": i32([[1, 2], [3, 0], [1, 2]]), "updates": updates},
        lambda data, indices, updates: mb.scatter_nd(
            data=data, indices=indices, updates=updates, mode=mode),
        lambda data, indices, updates: ref_scatter_nd(data, indices, updates, mode),
        exact=mode in ("update", "max", "min"),
    )  # fmt: skip


MODES = ("update", "add", "sub", "mul", "div", "max", "min")
SCATTER = [
    *[_scatter_case(m) for m in MODES],
    *[_scatter_along_case(m) for m in MODES],
    *[_scatter_nd_case(m) for m in MODES],
    Case(
        "scatter",
        "default mode (add), axis=-2",
        {"data": DATA, "indices": i32([2, 0]), "updates": normal(4, 2, 2)},
        lambda data, indices, updates: mb.scatter(
            data=data, indices=indices, updates=updates, axis=-2
        ),
        lambda data, indices, updates: ref_scatter(data, indices, updates, 1, "add"),
    ),
    Case(
        "scatter",
        "axis=2 update, iOS15 negative index",
        {"data": DATA, "indices": i32([-1]), "updates": normal(4, 3, 1)},
        lambda data, indices, updates: mb.scatter(
            data=data, indices=indices, updates=updates, axis=2, mode="update"
        ),
        lambda data, indices, updates: ref_scatter(data, indices % 2, updates, 2, "update"),
        exact=True,
        opset="iOS15",
    ),
    Case(
        "scatter",
        "int32 add",
        {"data": INTS, "indices": i32([0, 0, 2]), "updates": i32(rng.integers(-9, 9, (3, 4)))},
        lambda data, indices, updates: mb.scatter(
            data=data, indices=indices, updates=updates, mode="add"
        ),
        lambda data, indices, updates: ref_scatter(data, indices, updates, 0, "add"),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "scatter_along_axis",
        "default mode (add) axis=0, validate_indices",
        {"data": DATA, "indices": i32(rng.integers(0, 4, (2, 3, 2))), "updates": normal(2, 3, 2)},
        lambda data, indices, updates: mb.scatter_along_axis(
            data=data, indices=indices, updates=updates, validate_indices=True
        ),
        lambda data, indices, updates: ref_scatter_along_axis(data, indices, updates, 0, "add"),
    ),
    Case(
        "scatter_nd",
        "default mode (add) depth 1 slices",
        {"data": DATA, "indices": i32([[2], [0], [2]]), "updates": normal(3, 3, 2)},
        lambda data, indices, updates: mb.scatter_nd(data=data, indices=indices, updates=updates),
        lambda data, indices, updates: ref_scatter_nd(data, indices, updates, "add"),
    ),
    Case(
        "scatter_nd",
        "update full depth, int32",
        {"data": INTS, "indices": i32([[[0, 1]], [[2, 3]]]), "updates": i32([[5], [7]])},
        lambda data, indices, updates: mb.scatter_nd(
            data=data, indices=indices, updates=updates, mode="update"
        ),
        lambda data, indices, updates: ref_scatter_nd(data, indices, updates, "update"),
        exact=True,
        dtypes=FP32,
    ),
]

XS = normal(2, 5, 6)


def _slice(label: str, **kwargs: object) -> Case:
    return Case(
        "slice_by_index", label, {"x": XS}, lambda x: mb.slice_by_index(x=x, **kwargs), exact=True
    )


SLICES = [
    _slice("begin/end", begin=i32([0, 1, 2]), end=i32([2, 4, 6])),
    _slice("stride", begin=i32([0, 0, 1]), end=i32([2, 5, 6]), stride=i32([1, 2, 3])),
    _slice("negative begin/end", begin=i32([0, -4, -5]), end=i32([2, -1, -1])),
    _slice("negative stride", begin=i32([1, 4, 5]), end=i32([0, 0, 0]), stride=i32([-1, -1, -2])),
    _slice(
        "negative stride, masks",
        begin=i32([0, 0, 0]),
        end=i32([0, 0, 0]),
        stride=i32([1, -1, -2]),
        begin_mask=[True, True, True],
        end_mask=[True, True, True],
    ),
    _slice(
        "begin_mask end_mask",
        begin=i32([1, 3, 2]),
        end=i32([0, 4, 0]),
        begin_mask=[True, False, True],
        end_mask=[True, True, False],
    ),
    _slice(
        "squeeze_mask", begin=i32([0, 2, 0]), end=i32([2, 3, 6]), squeeze_mask=[False, True, False]
    ),
    _slice(
        "squeeze_mask negative begin",
        begin=i32([-1, 0, -2]),
        end=i32([0, 5, 0]),
        squeeze_mask=[True, False, True],
    ),
    _slice("end past the size", begin=i32([0, 3, 4]), end=i32([10, 10, 10])),
    _slice("empty", begin=i32([0, 3, 0]), end=i32([2, 3, 6])),
    Case(
        "slice_by_index",
        "int32",
        {"x": INTS},
        lambda x: mb.slice_by_index(x=x, begin=i32([1, 0]), end=i32([3, 4]), stride=i32([1, 3])),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "slice_by_index",
        "bool",
        {"x": INTS > 0},
        lambda x: mb.slice_by_index(x=x, begin=i32([0, 1]), end=i32([2, 3])),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "slice_by_index",
        "begin and end computed",
        {"x": XS, "begin": i32([1, 1, 0]), "end": i32([2, 4, 3])},
        lambda x, begin, end: mb.slice_by_index(x=x, begin=begin, end=end),
        exact=True,
    ),
    Case(
        "slice_by_size",
        "sizes",
        {"x": XS},
        lambda x: mb.slice_by_size(x=x, begin=i32([0, 1, 2]), size=i32([2, 3, 4])),
        exact=True,
    ),
    Case(
        "slice_by_size",
        "size -1, negative begin",
        {"x": XS},
        lambda x: mb.slice_by_size(x=x, begin=i32([-1, 0, -3]), size=i32([1, -1, 2])),
        exact=True,
    ),
    Case(
        "slice_by_size",
        "int32",
        {"x": INTS},
        lambda x: mb.slice_by_size(x=x, begin=i32([1, 1]), size=i32([-1, 2])),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "slice_update",
        "begin/end",
        {"x": XS, "update": normal(1, 3, 2)},
        lambda x, update: mb.slice_update(
            x=x, update=update, begin=i32([1, 1, 2]), end=i32([2, 4, 4])
        ),
        exact=True,
    ),
    Case(
        "slice_update",
        "stride, negative",
        {"x": XS, "update": normal(2, 2, 3)},
        lambda x, update: mb.slice_update(
            x=x, update=update, begin=i32([0, 4, 0]), end=i32([2, 0, 6]), stride=i32([1, -2, 2])
        ),
        exact=True,
    ),
    Case(
        "slice_update",
        "masks and squeeze",
        {"x": XS, "update": normal(5, 3)},
        lambda x, update: mb.slice_update(
            x=x,
            update=update,
            begin=i32([-1, 0, 1]),
            end=i32([0, 0, 0]),
            stride=i32([1, 1, 2]),
            begin_mask=[False, True, False],
            end_mask=[False, True, True],
            squeeze_mask=[True, False, False],
        ),
        exact=True,
    ),
    Case(
        "slice_update",
        "int32",
        {"x": INTS, "update": i32([[7, 8]])},
        lambda x, update: mb.slice_update(x=x, update=update, begin=i32([2, 1]), end=i32([3, 3])),
        exact=True,
        dtypes=FP32,
    ),
]

BUILD = [
    Case(
        "stack",
        "axis=0",
        {"a": normal(3, 4), "b": normal(3, 4)},
        lambda a, b: mb.stack(values=[a, b], axis=0),
        exact=True,
    ),
    Case(
        "stack",
        "axis=1 three values",
        {"a": normal(3, 4), "b": normal(3, 4), "c": normal(3, 4)},
        lambda a, b, c: mb.stack(values=[a, b, c], axis=1),
        exact=True,
    ),
    Case(
        "stack",
        "axis=-1",
        {"a": normal(3, 4), "b": normal(3, 4)},
        lambda a, b: mb.stack(values=[a, b], axis=-1),
        exact=True,
    ),
    Case(
        "stack",
        "int32 with a stored value",
        {"a": INTS},
        lambda a: mb.stack(values=[a, INTS * 2], axis=2),
        exact=True,
        dtypes=FP32,
    ),
    Case("shape", "float", {"x": X4}, lambda x: mb.shape(x=x), exact=True),
    Case("shape", "int32", {"x": INTS}, lambda x: mb.shape(x=x), exact=True, dtypes=FP32),
    Case(
        "fill",
        "computed shape, float value",
        {"x": X3},
        lambda x: mb.fill(shape=mb.shape(x=x), value=lit(x, 2.5)),
        exact=True,
    ),
    Case(
        "fill",
        "computed shape, default value",
        {"x": X3},
        lambda x: mb.fill(shape=mb.shape(x=x)),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "fill",
        "int value",
        {"x": X3},
        lambda x: mb.fill(shape=mb.shape(x=x), value=np.int32(-3)),
        exact=True,
    ),
    Case(
        "fill",
        "bool value",
        {"x": X3},
        lambda x: mb.fill(shape=mb.shape(x=x), value=True),
        exact=True,
    ),
    Case(
        "fill_like",
        "float value",
        {"x": X3},
        lambda x: mb.fill_like(ref_tensor=x, value=lit(x, -1.5)),
        exact=True,
    ),
    Case(
        "fill_like",
        "default value",
        {"x": X3},
        lambda x: mb.fill_like(ref_tensor=x),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "fill_like",
        "int value from int ref",
        {"x": INTS},
        lambda x: mb.fill_like(ref_tensor=x, value=np.int32(4)),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "fill_like",
        "bool value",
        {"x": X3},
        lambda x: mb.fill_like(ref_tensor=x, value=False),
        exact=True,
    ),
    Case("flatten2d", "default axis=1", {"x": X4}, lambda x: mb.flatten2d(x=x), exact=True),
    Case("flatten2d", "axis=2", {"x": X4}, lambda x: mb.flatten2d(x=x, axis=2), exact=True),
    Case("flatten2d", "axis=-1", {"x": X4}, lambda x: mb.flatten2d(x=x, axis=-1), exact=True),
    # MIL's value inference fails on the empty product (a float) of axis=0.
    Case(
        "flatten2d",
        "axis=0",
        {"x": X4},
        lambda x: mb.flatten2d(x=x, axis=0),
        lambda x: x.reshape(1, -1),
        exact=True,
    ),
    Case(
        "flatten2d",
        "int32",
        {"x": INTS},
        lambda x: mb.flatten2d(x=x, axis=-1),
        exact=True,
        dtypes=FP32,
    ),
    Case("reverse", "all axes", {"x": X3}, lambda x: mb.reverse(x=x), exact=True),
    Case("reverse", "axes=[1]", {"x": X3}, lambda x: mb.reverse(x=x, axes=[1]), exact=True),
    Case("reverse", "axes=[-1, 0]", {"x": X3}, lambda x: mb.reverse(x=x, axes=[-1, 0]), exact=True),
    Case(
        "reverse",
        "bool",
        {"x": INTS > 0},
        lambda x: mb.reverse(x=x, axes=[1]),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "reverse_sequence",
        "batch_axis=0 seq_axis=1",
        {"x": normal(3, 5, 2), "lengths": i32([2, 5, 0])},
        lambda x, lengths: mb.reverse_sequence(x=x, lengths=lengths, seq_axis=1, batch_axis=0),
        lambda x, lengths: ref_reverse_sequence(x, lengths, 1, 0),
        exact=True,
    ),
    Case(
        "reverse_sequence",
        "batch_axis=1 seq_axis=0",
        {"x": normal(5, 3, 2), "lengths": i32([4, 1, 3])},
        lambda x, lengths: mb.reverse_sequence(x=x, lengths=lengths, seq_axis=0, batch_axis=1),
        lambda x, lengths: ref_reverse_sequence(x, lengths, 0, 1),
        exact=True,
    ),
    Case(
        "reverse_sequence",
        "batch_axis=-1 seq_axis=1, stored lengths",
        {"x": normal(2, 4, 3)},
        lambda x: mb.reverse_sequence(x=x, lengths=i32([3, 4, 2]), seq_axis=1, batch_axis=-1),
        lambda x: ref_reverse_sequence(x, [3, 4, 2], 1, 2),
        exact=True,
    ),
    Case(
        "reverse_sequence",
        "int32 seq_axis=1, default batch_axis",
        {"x": INTS, "lengths": i32([1, 4, 2])},
        lambda x, lengths: mb.reverse_sequence(x=x, lengths=lengths, seq_axis=1),
        lambda x, lengths: ref_reverse_sequence(x, lengths, 1, 0),
        exact=True,
        dtypes=FP32,
    ),
    Case("band_part", "defaults (everything)", {"x": X3}, lambda x: mb.band_part(x=x), exact=True),
    Case(
        "band_part",
        "upper triangle",
        {"x": X3},
        lambda x: mb.band_part(x=x, lower=0, upper=-1),
        exact=True,
    ),
    Case(
        "band_part",
        "lower triangle",
        {"x": X3},
        lambda x: mb.band_part(x=x, lower=-1, upper=0),
        exact=True,
    ),
    Case(
        "band_part",
        "lower=1 upper=2, 4-D",
        {"x": X4},
        lambda x: mb.band_part(x=x, lower=1, upper=2),
        exact=True,
    ),
    Case(
        "band_part",
        "diagonal int32",
        {"x": INTS},
        lambda x: mb.band_part(x=x, lower=0, upper=0),
        exact=True,
        dtypes=FP32,
    ),
    Case("cumsum", "default axis=0", {"x": X3}, lambda x: mb.cumsum(x=x), tolerance=2.0),
    Case("cumsum", "axis=-1", {"x": X3}, lambda x: mb.cumsum(x=x, axis=-1), tolerance=2.0),
    Case(
        "cumsum",
        "axis=1 reverse",
        {"x": X3},
        lambda x: mb.cumsum(x=x, axis=1, reverse=True),
        tolerance=2.0,
    ),
    Case(
        "cumsum",
        "axis=2 exclusive",
        {"x": X3},
        lambda x: mb.cumsum(x=x, axis=2, exclusive=True),
        lambda x: ref_cumsum(x, 2, exclusive=True),
        tolerance=2.0,
    ),
    Case(
        "cumsum",
        "axis=1 exclusive reverse",
        {"x": X3},
        lambda x: mb.cumsum(x=x, axis=1, exclusive=True, reverse=True),
        lambda x: ref_cumsum(x, 1, exclusive=True, reverse=True),
        tolerance=2.0,
    ),
    Case("cumsum", "int32", {"x": INTS}, lambda x: mb.cumsum(x=x, axis=1), exact=True, dtypes=FP32),
]

XD = distinct(3, 4, 6)
SORTING = [
    Case("topk", "k=2 default axis", {"x": XD}, lambda x: mb.topk(x=x, k=2), exact=True),
    Case(
        "topk",
        "k=3 ascending axis=1",
        {"x": XD},
        lambda x: mb.topk(x=x, k=3, axis=1, ascending=True),
        exact=True,
    ),
    Case(
        "topk",
        "axis=0 iOS15",
        {"x": XD},
        lambda x: mb.topk(x=x, k=2, axis=0),
        exact=True,
        opset="iOS15",
    ),
    # k=-1 is "all elements" (iOS17); MIL's value inference slices [0:-1], one short.
    Case(
        "topk",
        "k=-1 (all)",
        {"x": XD},
        lambda x: mb.topk(x=x, k=-1, axis=-2),
        lambda x: (-np.sort(-x, axis=1), np.argsort(-x, axis=1, kind="stable")),
        exact=True,
    ),
    Case(
        "topk",
        "return_indices=False",
        {"x": XD},
        lambda x: mb.topk(x=x, k=4, return_indices=False),
        exact=True,
        opset="iOS16",
    ),
    Case("topk", "sort=False", {"x": XD}, lambda x: mb.topk(x=x, k=3, sort=False), exact=True),
    Case(
        "topk",
        "output_indices_dtype=uint16",
        {"x": XD},
        lambda x: mb.topk(x=x, k=2, output_indices_dtype="uint16"),
        exact=True,
    ),
    Case(
        "topk",
        "int32",
        {"x": i32(rng.permutation(24).reshape(4, 6))},
        lambda x: mb.topk(x=x, k=3),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "argsort",
        "default (descending, last axis)",
        {"x": XD},
        lambda x: mb.argsort(x=x),
        exact=True,
    ),
    Case(
        "argsort",
        "ascending axis=0",
        {"x": XD},
        lambda x: mb.argsort(x=x, axis=0, ascending=True),
        exact=True,
    ),
    Case(
        "argsort",
        "axis=-2 int32",
        {"x": i32(rng.permutation(24).reshape(4, 6))},
        lambda x: mb.argsort(x=x, axis=-2),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "one_hot",
        "default axis=-1",
        {"indices": i32([[1, 0, 4], [2, 2, 3]])},
        lambda indices: mb.one_hot(indices=indices, one_hot_vector_size=5),
        lambda indices: ref_one_hot(indices, 5),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "one_hot",
        "axis=0, out-of-range index",
        {"indices": i32([[1, 0, 7], [2, -1, 3]])},
        lambda indices: mb.one_hot(indices=indices, one_hot_vector_size=4, axis=0),
        lambda indices: ref_one_hot(indices, 4, 0),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "one_hot",
        "axis=1 float on/off",
        {"indices": i32([[1, 0, 3], [2, 2, 3]])},
        lambda indices: mb.one_hot(
            indices=indices, one_hot_vector_size=4, axis=1, on_value=2.5, off_value=-1.0
        ),
        lambda indices: ref_one_hot(indices, 4, 1, 2.5, -1.0),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "one_hot",
        "bool on/off, computed size",
        {"indices": i32([[1, 0, 3]])},
        lambda indices: mb.one_hot(
            indices=indices,
            one_hot_vector_size=mb.reduce_max(x=indices),
            on_value=True,
            off_value=False,
        ),
        lambda indices: ref_one_hot(indices, 3, -1, True, False),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "range_1d",
        "int",
        {"x": X3},
        lambda x: mb.range_1d(start=np.int32(2), end=np.int32(17), step=np.int32(3)),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "range_1d",
        "int negative step",
        {"x": X3},
        lambda x: mb.range_1d(start=np.int32(10), end=np.int32(-3), step=np.int32(-4)),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "range_1d",
        "float",
        {"x": X3},
        lambda x: mb.range_1d(start=np.float32(0.5), end=np.float32(3.2), step=np.float32(0.25)),
        dtypes=FP32,
    ),
    Case(
        "range_1d",
        "computed end",
        {"x": X3},
        lambda x: mb.range_1d(
            start=np.int32(0), end=mb.reduce_prod(x=mb.shape(x=x)), step=np.int32(7)
        ),
        exact=True,
        dtypes=FP32,
    ),
]

MOVES = [
    Case(
        "pixel_shuffle",
        "factor 2",
        {"x": normal(1, 8, 3, 4)},
        lambda x: mb.pixel_shuffle(x=x, upscale_factor=2),
        lambda x: ref_pixel_shuffle(x, 2),
        exact=True,
    ),
    Case(
        "pixel_unshuffle",
        "factor 2",
        {"x": normal(1, 2, 6, 4)},
        lambda x: mb.pixel_unshuffle(x=x, downscale_factor=np.uint32(2)),
        lambda x: ref_pixel_unshuffle(x, 2),
        exact=True,
        opset="iOS16",
    ),
    Case(
        "depth_to_space",
        "block 2",
        {"x": normal(1, 8, 2, 3)},
        lambda x: mb.depth_to_space(x=x, block_size=2),
        lambda x: ref_depth_to_space(x, 2),
        exact=True,
    ),
    Case(
        "space_to_depth",
        "block 2",
        {"x": normal(1, 2, 4, 6)},
        lambda x: mb.space_to_depth(x=x, block_size=2),
        lambda x: ref_space_to_depth(x, 2),
        exact=True,
    ),
    Case(
        "space_to_batch",
        "Core ML's own example",
        {"x": S2B_IN},
        lambda x: mb.space_to_batch(x=x, block_shape=i32([2, 2]), paddings=i32([[0, 0], [2, 0]])),
        lambda x: S2B_OUT,
        exact=True,
    ),
    Case(
        "space_to_batch",
        "padding both axes",
        {"x": normal(2, 3, 3, 4)},
        lambda x: mb.space_to_batch(x=x, block_shape=i32([2, 3]), paddings=i32([[1, 0], [1, 1]])),
        lambda x: ref_space_to_batch(x, (2, 3), ((1, 0), (1, 1))),
        exact=True,
    ),
    Case(
        "batch_to_space",
        "Core ML's own example",
        {"x": S2B_OUT},
        lambda x: mb.batch_to_space(x=x, block_shape=i32([2, 2]), crops=i32([[0, 0], [2, 0]])),
        lambda x: S2B_IN,
        exact=True,
    ),
    Case(
        "batch_to_space",
        "inverse of space_to_batch",
        {"x": normal(2, 3, 3, 4)},
        lambda x: mb.batch_to_space(
            x=mb.space_to_batch(x=x, block_shape=i32([2, 3]), paddings=i32([[1, 0], [1, 1]])),
            block_shape=i32([2, 3]),
            crops=i32([[1, 0], [1, 1]]),
        ),
        lambda x: x,
        exact=True,
    ),
    Case(
        "sliding_windows",
        "axis=1 size 4 stride 2",
        {"x": normal(1, 10, 3)},
        lambda x: mb.sliding_windows(x=x, axis=1, size=4, stride=2),
        lambda x: ref_sliding_windows(x, 1, 4, 2),
        exact=True,
    ),
    Case(
        "sliding_windows",
        "axis=-1 default stride",
        {"x": normal(2, 3, 5)},
        lambda x: mb.sliding_windows(x=x, axis=-1, size=3),
        lambda x: ref_sliding_windows(x, -1, 3),
        exact=True,
    ),
    Case(
        "sliding_windows",
        "int32 axis=0",
        {"x": INTS},
        lambda x: mb.sliding_windows(x=x, axis=0, size=2),
        lambda x: ref_sliding_windows(x, 0, 2),
        exact=True,
        dtypes=FP32,
    ),
]

SPARSE_FLOAT = np.array([[0.0, 1.5, 0.0], [-2.0, 0.0, 3.0]], np.float32)
SPARSE_INT = np.array([[[0, 1], [2, 0]], [[0, 0], [0, 5]]], np.int32)
NON_ZERO = [
    Case("non_zero", "float, rank 2", {"x": SPARSE_FLOAT}, lambda x: mb.non_zero(x=x), exact=True),
    Case("non_zero", "int32, rank 3", {"x": SPARSE_INT}, lambda x: mb.non_zero(x=x), exact=True,
         dtypes=("fp32",)),
]  # fmt: skip

CASES = [*GATHER, *SCATTER, *SLICES, *BUILD, *SORTING, *MOVES, *NON_ZERO]

REFUSALS = [
    Refusal(
        "scatter",
        "mode=div on int32",
        {"data": INTS, "indices": i32([1]), "updates": i32([[1, 2, 3, 4]])},
        lambda data, indices, updates: mb.scatter(
            data=data, indices=indices, updates=updates, mode="div"
        ),
        "mode 'div' on int32 data",
    ),
    Refusal(
        "scatter_nd",
        "mode=div on int32",
        {"data": INTS, "indices": i32([[1, 1]]), "updates": i32([3])},
        lambda data, indices, updates: mb.scatter_nd(
            data=data, indices=indices, updates=updates, mode="div"
        ),
        "mode 'div' on int32 data",
    ),
    Refusal(
        "scatter_along_axis",
        "unknown mode",
        {"data": DATA, "indices": i32(np.zeros((1, 3, 2))), "updates": normal(1, 3, 2)},
        lambda data, indices, updates: mb.scatter_along_axis(
            data=data, indices=indices, updates=updates, mode="xor"
        ),
        "mode='xor' is not supported",
    ),
]
