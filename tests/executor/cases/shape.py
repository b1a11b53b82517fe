"""Conformance cases: shape ops - reshape, transpose, squeeze, expand_dims, concat, split,
tile, pad, upsample_nearest_neighbor, identity (``tensor_transformation.py``,
``tensor_operation.py``, ``image_resizing.py``)."""

from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from mil_conformance import Case, Refusal, lit

rng = np.random.default_rng(2)
FP32 = ("fp32",)


def normal(*shape: int) -> np.ndarray:
    return (rng.normal(size=shape) * 3).astype(np.float32)


def i32(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


X3 = normal(2, 3, 4)
X4 = normal(1, 3, 4, 5)
INTS = i32(rng.integers(-50, 50, size=(3, 4)))


def ref_upsample(x: np.ndarray, sh: float, sw: float) -> np.ndarray:
    h, w = x.shape[-2:]
    rows = np.floor(np.arange(int(np.floor(h * sh))) / sh).astype(int)
    cols = np.floor(np.arange(int(np.floor(w * sw))) / sw).astype(int)
    return x[..., rows, :][..., cols]


def ref_interleave(*values: np.ndarray, axis: int) -> np.ndarray:
    """output[i::n] = values[i] along ``axis`` (MIL's value inference ignores interleave)."""
    axis = axis % values[0].ndim
    out = np.stack(values, axis=axis + 1)
    shape = list(values[0].shape)
    shape[axis] *= len(values)
    return out.reshape(shape)


RESHAPE = [
    Case("reshape", "[2, -1]", {"x": X3}, lambda x: mb.reshape(x=x, shape=[2, -1]), exact=True),
    Case(
        "reshape",
        "0 copies a dim, same rank",
        {"x": X3},
        lambda x: mb.reshape(x=x, shape=[0, -1, 2]),
        exact=True,
    ),
    Case(
        "reshape",
        "0 same rank, iOS15",
        {"x": X3},
        lambda x: mb.reshape(x=x, shape=[0, 0, -1]),
        exact=True,
        opset="iOS15",
    ),
    Case(
        "reshape",
        "0 right-aligned, longer shape (iOS17)",
        {"x": X3},
        lambda x: mb.reshape(x=x, shape=[1, 0, -1, 0]),
        exact=True,
    ),
    Case(
        "reshape",
        "0 right-aligned, shorter shape (iOS17)",
        {"x": X3},
        lambda x: mb.reshape(x=x, shape=[-1, 0]),
        exact=True,
    ),
    Case(
        "reshape",
        "to a scalar",
        {"x": normal(1, 1)},
        lambda x: mb.reshape(x=x, shape=i32([])),
        exact=True,
    ),
    Case(
        "reshape",
        "shape computed at run time",
        {"x": X3, "y": normal(4, 6)},
        lambda x, y: mb.reshape(x=x, shape=mb.shape(x=y)),
        exact=True,
    ),
    Case(
        "reshape",
        "int32",
        {"x": INTS},
        lambda x: mb.reshape(x=x, shape=[2, 2, 3]),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "reshape",
        "bool",
        {"x": INTS > 0},
        lambda x: mb.reshape(x=x, shape=[-1]),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "transpose",
        "perm=[2, 0, 1]",
        {"x": X3},
        lambda x: mb.transpose(x=x, perm=[2, 0, 1]),
        exact=True,
    ),
    Case(
        "transpose",
        "negative perm",
        {"x": X3},
        lambda x: mb.transpose(x=x, perm=[-1, 0, -2]),
        exact=True,
    ),
    Case(
        "transpose",
        "int32",
        {"x": INTS},
        lambda x: mb.transpose(x=x, perm=[1, 0]),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "squeeze",
        "all single dims",
        {"x": normal(1, 3, 1, 4)},
        lambda x: mb.squeeze(x=x),
        exact=True,
    ),
    Case(
        "squeeze",
        "axes=[2]",
        {"x": normal(1, 3, 1, 4)},
        lambda x: mb.squeeze(x=x, axes=[2]),
        exact=True,
    ),
    Case(
        "squeeze",
        "axes=[-2, 0]",
        {"x": normal(1, 3, 1, 4)},
        lambda x: mb.squeeze(x=x, axes=[-2, 0]),
        exact=True,
    ),
    # Axes of size > 1 are ignored (torch's rule); MIL's value inference (numpy) would raise.
    Case(
        "squeeze",
        "axis of size 3 ignored",
        {"x": normal(1, 3, 1, 4)},
        lambda x: mb.squeeze(x=x, axes=[1, 2]),
        lambda x: x.reshape(1, 3, 4),
        exact=True,
    ),
    # To a scalar: MIL's value inference returns x[0] (shape (1,)), not the scalar it types.
    Case(
        "squeeze",
        "to a scalar",
        {"x": normal(1, 1)},
        lambda x: mb.squeeze(x=x),
        lambda x: x.reshape(()),
        exact=True,
    ),
    Case(
        "squeeze",
        "bool",
        {"x": (INTS > 0).reshape(3, 1, 4)},
        lambda x: mb.squeeze(x=x, axes=[1]),
        exact=True,
        dtypes=FP32,
    ),
    Case("expand_dims", "axes=[0]", {"x": X3}, lambda x: mb.expand_dims(x=x, axes=[0]), exact=True),
    Case(
        "expand_dims", "axes=[-1]", {"x": X3}, lambda x: mb.expand_dims(x=x, axes=[-1]), exact=True
    ),
    Case(
        "expand_dims",
        "axes=[1, 3]",
        {"x": X3},
        lambda x: mb.expand_dims(x=x, axes=[1, 3]),
        exact=True,
    ),
    Case(
        "expand_dims",
        "axes=[-2, -1]",
        {"x": X3},
        lambda x: mb.expand_dims(x=x, axes=[-2, -1]),
        exact=True,
    ),
    Case(
        "expand_dims",
        "int32 axes=[0, -1]",
        {"x": INTS},
        lambda x: mb.expand_dims(x=x, axes=[0, -1]),
        exact=True,
        dtypes=FP32,
    ),
]

A, B, C = normal(2, 3, 4), normal(2, 5, 4), normal(2, 3, 4)
CONCAT = [
    Case(
        "concat",
        "axis=1",
        {"a": A, "b": B},
        lambda a, b: mb.concat(values=[a, b], axis=1),
        exact=True,
    ),
    Case(
        "concat",
        "axis=0 three values",
        {"a": A, "b": C, "c": A},
        lambda a, b, c: mb.concat(values=[a, b, c], axis=0),
        exact=True,
    ),
    Case(
        "concat",
        "axis=-1",
        {"a": A, "b": C},
        lambda a, b: mb.concat(values=[a, b], axis=-1),
        exact=True,
    ),
    Case(
        "concat",
        "interleave axis=1",
        {"a": A, "b": C, "c": A * 2},
        lambda a, b, c: mb.concat(values=[a, b, c], axis=1, interleave=True),
        lambda a, b, c: ref_interleave(a, b, c, axis=1),
        exact=True,
    ),
    Case(
        "concat",
        "interleave axis=-1",
        {"a": A, "b": C},
        lambda a, b: mb.concat(values=[a, b], axis=-1, interleave=True),
        lambda a, b: ref_interleave(a, b, axis=-1),
        exact=True,
    ),
    Case(
        "concat",
        "interleave axis=0",
        {"a": A, "b": C},
        lambda a, b: mb.concat(values=[a, b], axis=0, interleave=True),
        lambda a, b: ref_interleave(a, b, axis=0),
        exact=True,
    ),
    Case(
        "concat",
        "with a stored value",
        {"a": A},
        lambda a: mb.concat(values=[a, lit(a, C)], axis=2),
        exact=True,
    ),
    Case(
        "concat",
        "int32 with a literal",
        {"a": i32([3, 4])},
        lambda a: mb.concat(values=[a, [5], a], axis=0),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "concat",
        "scalars",
        {"a": A},
        lambda a: mb.concat(values=[mb.reduce_max(x=a), mb.reduce_min(x=a)], axis=0),
        lambda a: np.array([a.max(), a.min()]),
        exact=True,
    ),
    Case(
        "split",
        "num_splits=2 axis=0",
        {"x": normal(4, 3)},
        lambda x: mb.split(x=x, num_splits=2, axis=0),
        exact=True,
    ),
    Case(
        "split",
        "num_splits=3 axis=-1",
        {"x": normal(2, 6)},
        lambda x: mb.split(x=x, num_splits=3, axis=-1),
        exact=True,
    ),
    Case(
        "split",
        "split_sizes axis=1",
        {"x": normal(2, 5, 3)},
        lambda x: mb.split(x=x, split_sizes=[1, 3, 1], axis=1),
        exact=True,
    ),
    Case(
        "split",
        "num_splits with uneven split_sizes",
        {"x": normal(2, 5, 3)},
        lambda x: mb.split(x=x, num_splits=2, split_sizes=[4, 1], axis=-2),
        exact=True,
    ),
    Case(
        "split",
        "int32",
        {"x": INTS},
        lambda x: mb.split(x=x, split_sizes=[3, 1], axis=1),
        exact=True,
        dtypes=FP32,
    ),
    Case("tile", "reps=[1, 2, 3]", {"x": X3}, lambda x: mb.tile(x=x, reps=[1, 2, 3]), exact=True),
    Case(
        "tile",
        "int32 reps=[2, 1]",
        {"x": INTS},
        lambda x: mb.tile(x=x, reps=[2, 1]),
        exact=True,
        dtypes=FP32,
    ),
    Case(
        "tile",
        "bool",
        {"x": INTS > 0},
        lambda x: mb.tile(x=x, reps=[1, 3]),
        exact=True,
        dtypes=FP32,
    ),
    Case("identity", "float", {"x": X3}, lambda x: mb.identity(x=x), exact=True),
    Case("identity", "int32", {"x": INTS}, lambda x: mb.identity(x=x), exact=True, dtypes=FP32),
]

X2 = normal(4, 5)
X5 = normal(1, 2, 3, 4, 5)


def _pad(label: str, x: np.ndarray, pads: list[int], mode: str, value: float | None = None) -> Case:
    def build(x):
        extra = {} if value is None else {"constant_val": lit(x, value)}
        return mb.pad(x=x, pad=i32(pads), mode=mode, **extra)

    return Case("pad", f"{mode} {label}", {"x": x}, build, exact=True)


PAD = [
    _pad("2-D both axes", X2, [1, 2, 0, 3], "constant"),
    _pad("2-D last axis only", X2, [2, 1], "constant"),
    _pad("3-D constant_val", X3, [1, 0, 0, 2, 3, 1], "constant", 1.5),
    _pad("4-D last two axes", X4, [1, 2, 2, 1], "constant", -2.0),
    _pad("4-D every axis", X4, [1, 0, 0, 1, 1, 1, 2, 0], "constant"),
    _pad("2-D both axes", X2, [1, 2, 3, 1], "reflect"),
    _pad("2-D last axis only", X2, [3, 2], "reflect"),
    _pad("3-D last two axes", X3, [0, 0, 2, 1, 1, 3], "reflect"),
    _pad("3-D last two axes, short pad", X3, [2, 1, 1, 3], "reflect"),
    _pad("4-D last two axes", X4, [2, 3, 4, 1], "reflect"),
    _pad("4-D last three axes", X4, [0, 0, 1, 2, 2, 3, 4, 0], "reflect"),
    _pad("5-D last axis", X5, [1, 4], "reflect"),
    _pad("1-D", normal(6), [2, 3], "reflect"),
    _pad("2-D both axes", X2, [2, 4, 5, 1], "replicate"),
    _pad("2-D last axis only", X2, [5, 0], "replicate"),
    _pad("3-D every axis", X3, [1, 1, 3, 0, 0, 4], "replicate"),
    _pad("4-D last two axes", X4, [3, 4, 0, 5], "replicate"),
    _pad("4-D last three, short pad", X4, [1, 2, 4, 0, 0, 5], "replicate"),
    Case(
        "pad",
        "constant, pad computed at run time",
        {"x": X3, "pad": i32([0, 1, 2, 0, 1, 1])},
        lambda x, pad: mb.pad(x=x, pad=pad),
        exact=True,
    ),
    Case(
        "pad",
        "reflect, pad computed at run time",
        {"x": X3, "pad": i32([0, 0, 2, 1, 1, 3])},
        lambda x, pad: mb.pad(x=x, pad=pad, mode="reflect"),
        exact=True,
    ),
    Case(
        "upsample_nearest_neighbor",
        "default scale 1",
        {"x": X4},
        lambda x: mb.upsample_nearest_neighbor(x=x),
        lambda x: x,
        exact=True,
    ),
    Case(
        "upsample_nearest_neighbor",
        "int scales 2, 3",
        {"x": X4},
        lambda x: mb.upsample_nearest_neighbor(x=x, scale_factor_height=2, scale_factor_width=3),
        lambda x: ref_upsample(x, 2, 3),
        exact=True,
    ),
    Case(
        "upsample_nearest_neighbor",
        "rank 3",
        {"x": X3},
        lambda x: mb.upsample_nearest_neighbor(x=x, scale_factor_height=3, scale_factor_width=2),
        lambda x: ref_upsample(x, 3, 2),
        exact=True,
    ),
    Case(
        "upsample_nearest_neighbor",
        "rank 5",
        {"x": X5},
        lambda x: mb.upsample_nearest_neighbor(x=x, scale_factor_height=2, scale_factor_width=2),
        lambda x: ref_upsample(x, 2, 2),
        exact=True,
    ),
    Case(
        "upsample_nearest_neighbor",
        "fractional scales",
        {"x": X4},
        lambda x: mb.upsample_nearest_neighbor(
            x=x, scale_factor_height=1.5, scale_factor_width=2.5
        ),
        lambda x: ref_upsample(x, 1.5, 2.5),
        exact=True,
    ),
]

CASES = [*RESHAPE, *CONCAT, *PAD]

REFUSALS = [
    Refusal(
        "pad",
        "reflect over four axes",
        {"x": X4},
        lambda x: mb.pad(x=x, pad=i32([1, 0, 1, 1, 1, 1, 1, 1]), mode="reflect"),
        "reflect padding of more than 3 axes",
    ),
    Refusal(
        "pad",
        "replicate over four axes",
        {"x": X4},
        lambda x: mb.pad(x=x, pad=i32([0, 1, 1, 1, 1, 1, 1, 1]), mode="replicate"),
        "replicate padding of more than 3 axes",
    ),
]
