"""Conformance cases: conv, conv_transpose, linear, matmul, einsum (``conv.py``,
``linear.py``). MIL has no value inference for conv and conv_transpose: their references are
explicit loops over tiny shapes, from the definitions' formulas. Constant weights are
fp16-exact, so the fp16 and fp32 programs (and iOS17's fp16/fp32 mixes) share one array."""

from __future__ import annotations

import itertools
import math

import numpy as np
from coremltools.converters.mil import Builder as mb
from mil_conformance import Case, Refusal, lit

rng = np.random.default_rng(7)


def exact16(*shape: int) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float16).astype(np.float32)


def same_pads(pad_type, sizes, kernel, strides, dilations):
    pads = []
    for i, size in enumerate(sizes):
        dk = (kernel[i] - 1) * dilations[i] + 1
        total = max(0, strides[i] * math.ceil(size / strides[i]) - size + dk - strides[i])
        small, large = total // 2, total - total // 2
        pads += [small, large] if pad_type == "same" else [large, small]
    return pads


def conv_ref(x, w, b=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    """out[n, o, p] = b[o] + sum_{c in o's group, k} x_padded[n, c, p * s + k * d] * w[o, c, k]."""
    n = w.ndim - 2
    strides = strides or [1] * n
    dilations = dilations or [1] * n
    sizes = x.shape[2:]
    if pad_type == "custom":
        pads = list(pad)
    elif pad_type == "valid":
        pads = [0] * (2 * n)
    else:
        pads = same_pads(pad_type, sizes, w.shape[2:], strides, dilations)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[2 * i], pads[2 * i + 1]) for i in range(n)])
    outs = [
        (sizes[i] + pads[2 * i] + pads[2 * i + 1] - (w.shape[2 + i] - 1) * dilations[i] - 1)
        // strides[i]
        + 1
        for i in range(n)
    ]
    c_out, c_in_group = w.shape[:2]
    out_per_group = c_out // groups
    result = np.zeros((x.shape[0], c_out, *outs))
    for o in range(c_out):
        g = o // out_per_group
        for p in itertools.product(*(range(s) for s in outs)):
            total = np.zeros(x.shape[0])
            for c in range(c_in_group):
                for k in itertools.product(*(range(s) for s in w.shape[2:])):
                    at = tuple(p[i] * strides[i] + k[i] * dilations[i] for i in range(n))
                    total += xp[(slice(None), g * c_in_group + c, *at)] * w[(o, c, *k)]
            result[(slice(None), o, *p)] = total + (0 if b is None else b[o])
    return result


def conv_transpose_ref(
    x,
    w,
    b=None,
    pad=None,
    output_shape=None,
    pad_type="valid",
    strides=None,
    dilations=None,
    groups=1,
):
    """Scatter every input element through the kernel into the full output
    ((D_in - 1) * s + (K - 1) * d + 1 per axis), then crop it to the output size."""
    n = w.ndim - 2
    strides = strides or [1] * n
    dilations = dilations or [1] * n
    c_in, out_per_group = w.shape[:2]
    in_per_group = c_in // groups
    sizes = x.shape[2:]
    full_sizes = [
        (sizes[i] - 1) * strides[i] + (w.shape[2 + i] - 1) * dilations[i] + 1 for i in range(n)
    ]
    full = np.zeros((x.shape[0], out_per_group * groups, *full_sizes))
    for c in range(c_in):
        g = c // in_per_group
        for p in itertools.product(*(range(s) for s in sizes)):
            for k in itertools.product(*(range(s) for s in w.shape[2:])):
                at = tuple(p[i] * strides[i] + k[i] * dilations[i] for i in range(n))
                for o in range(out_per_group):
                    full[(slice(None), g * out_per_group + o, *at)] += (
                        x[(slice(None), c, *p)] * w[(c, o, *k)]
                    )
    out_sizes, befores = [], []
    for i in range(n):
        if output_shape is not None:
            size = output_shape[2 + i]
        elif pad_type == "same":
            size = sizes[i] * strides[i]
        elif pad_type == "custom":
            size = full_sizes[i] - pad[2 * i] - pad[2 * i + 1]
        else:
            size = full_sizes[i]
        if pad_type == "same":
            before = max(full_sizes[i] - size, 0) // 2
        else:
            before = pad[2 * i] if pad_type == "custom" else 0
        out_sizes.append(size)
        befores.append(before)
    out = np.zeros((x.shape[0], full.shape[1], *out_sizes))
    for q in itertools.product(*(range(s) for s in out_sizes)):
        source = tuple(q[i] + befores[i] for i in range(n))
        if all(s < full_sizes[i] for i, s in enumerate(source)):
            out[(slice(None), slice(None), *q)] = full[(slice(None), slice(None), *source)]
    if b is not None:
        out = out + np.asarray(b).reshape([1, -1] + [1] * n)
    return out


X1 = rng.normal(size=(1, 4, 9)).astype(np.float32)
X2 = rng.normal(size=(1, 4, 6, 7)).astype(np.float32)
X3 = rng.normal(size=(1, 2, 4, 5, 3)).astype(np.float32)
W1 = exact16(6, 4, 3)
W2 = exact16(6, 4, 3, 2)
W2G = exact16(6, 2, 3, 3)  # groups=2
W2D = exact16(8, 1, 3, 3)  # depthwise (groups=4, 2 outputs per channel)
W3 = exact16(3, 2, 2, 3, 2)
B6, B8, B3 = exact16(6), exact16(8), exact16(3)


def conv_case(label, x, w, b=None, opset="iOS18", **attrs):
    def build(x):
        args = {"x": x, "weight": lit(x, w), **attrs}
        if b is not None:
            args["bias"] = lit(x, b)
        return mb.conv(**args)

    return Case(
        "conv",
        label,
        {"x": x},
        build,
        reference=lambda x: conv_ref(x, w, b, **attrs),
        opset=opset,
        tolerance=2.0,
    )


CASES = [
    conv_case("1-D valid, no bias", X1, W1),
    conv_case("1-D same stride 2, bias", X1, W1, B6, strides=[2], pad_type="same"),
    conv_case(
        "1-D same_lower even kernel, dilation 2",
        X1,
        W1[..., :2].copy(),
        B6,
        pad_type="same_lower",
        dilations=[2],
    ),
    conv_case("1-D custom [2, 0]", X1, W1, pad_type="custom", pad=[2, 0]),
    conv_case("2-D valid, bias", X2, W2, B6),
    conv_case(
        "2-D same, strides 2x2 (odd and even totals)", X2, W2, B6, strides=[2, 2], pad_type="same"
    ),
    conv_case("2-D same_lower, strides 2x2", X2, W2, strides=[2, 2], pad_type="same_lower"),
    conv_case("2-D same, dilations 2x3", X2, W2, B6, pad_type="same", dilations=[2, 3]),
    conv_case(
        "2-D custom asymmetric [1, 2, 0, 3], stride 2x1",
        X2,
        W2,
        B6,
        pad_type="custom",
        pad=[1, 2, 0, 3],
        strides=[2, 1],
    ),
    conv_case("2-D custom symmetric [1, 1, 2, 2]", X2, W2, pad_type="custom", pad=[1, 1, 2, 2]),
    conv_case("2-D groups=2", X2, W2G, B6, groups=2, pad_type="same"),
    conv_case(
        "2-D depthwise groups=4 (2 per channel), stride 2, dilation 2",
        X2,
        W2D,
        B8,
        groups=4,
        strides=[2, 2],
        dilations=[2, 2],
        pad_type="valid",
    ),
    conv_case("3-D valid, bias", X3, W3, B3),
    conv_case("3-D same strides 2x1x2", X3, W3, strides=[2, 1, 2], pad_type="same"),
    conv_case(
        "3-D custom [1, 0, 0, 1, 2, 1], dilation 1x2x1",
        X3,
        W3,
        B3,
        pad_type="custom",
        pad=[1, 0, 0, 1, 2, 1],
        dilations=[1, 2, 1],
    ),
    conv_case("2-D iOS15 same", X2, W2, B6, pad_type="same", opset="iOS15"),
    Case(
        "conv",
        "2-D weight and bias computed (program inputs)",
        {"x": X2, "w": W2},
        lambda x, w: mb.conv(x=x, weight=w, pad_type="same", strides=[1, 2]),
        reference=lambda x, w: conv_ref(x, w, pad_type="same", strides=[1, 2]),
        tolerance=2.0,
    ),
    Case(
        "conv",
        "iOS17 fp32 weight and bias (with fp16 x: a mix)",
        {"x": X2},
        lambda x: mb.conv(x=x, weight=W2, bias=B6, pad_type="same"),
        reference=lambda x: conv_ref(x, W2, B6, pad_type="same"),
        opset="iOS17",
        tolerance=2.0,
    ),
    Case(
        "conv",
        "iOS18 fp16 weight (with fp32 x: a mix)",
        {"x": X2},
        lambda x: mb.conv(x=x, weight=W2.astype(np.float16), pad_type="valid"),
        reference=lambda x: conv_ref(x, W2),
        tolerance=2.0,
    ),
]

TW1 = exact16(4, 3, 3)  # (C_in, C_out / groups, K)
TW2 = exact16(4, 3, 3, 2)
TW2G = exact16(4, 2, 2, 3)  # groups=2 → C_out 4
TW3 = exact16(2, 2, 2, 2, 3)
XT1 = rng.normal(size=(1, 4, 5)).astype(np.float32)
XT2 = rng.normal(size=(1, 4, 3, 4)).astype(np.float32)
XT3 = rng.normal(size=(1, 2, 2, 3, 2)).astype(np.float32)


def transpose_case(label, x, w, b=None, opset="iOS18", **attrs):
    def build(x):
        args = {"x": x, "weight": lit(x, w), **attrs}
        if b is not None:
            args["bias"] = lit(x, b)
        return mb.conv_transpose(**args)

    return Case(
        "conv_transpose",
        label,
        {"x": x},
        build,
        reference=lambda x: conv_transpose_ref(x, w, b, **attrs),
        opset=opset,
        tolerance=2.0,
    )


CASES += [
    transpose_case("1-D valid, no bias", XT1, TW1),
    transpose_case("1-D valid stride 2, bias", XT1, TW1, B3, strides=[2]),
    transpose_case(
        "1-D same stride 2 (crop 1: 0 before, 1 after)", XT1, TW1, B3, pad_type="same", strides=[2]
    ),
    transpose_case(
        "1-D same stride 3 > kernel (zeros appended)",
        XT1,
        TW1[..., :2].copy(),
        pad_type="same",
        strides=[3],
    ),
    transpose_case(
        "1-D custom [1, 2], dilation 2", XT1, TW1, pad_type="custom", pad=[1, 2], dilations=[2]
    ),
    transpose_case("2-D valid strides 2x3, bias", XT2, TW2, B3, strides=[2, 3]),
    transpose_case("2-D same strides 2x2", XT2, TW2, B3, pad_type="same", strides=[2, 2]),
    transpose_case("2-D same stride 1", XT2, TW2, pad_type="same"),
    transpose_case(
        "2-D custom asymmetric [0, 2, 1, 0], strides 2x2",
        XT2,
        TW2,
        B3,
        pad_type="custom",
        pad=[0, 2, 1, 0],
        strides=[2, 2],
    ),
    transpose_case("2-D groups=2, stride 2", XT2, TW2G, B3[:2].repeat(2), groups=2, strides=[2, 2]),
    transpose_case("2-D dilations 2x1, stride 2", XT2, TW2, dilations=[2, 1], strides=[2, 1]),
    transpose_case(
        "2-D same with output_shape (TF SAME, output 5x8)",
        XT2,
        TW2,
        B3,
        pad_type="same",
        strides=[2, 2],
        output_shape=[1, 3, 5, 8],
    ),
    transpose_case(
        "2-D valid with output_shape past the full output (zeros)",
        XT2,
        TW2,
        pad_type="valid",
        strides=[2, 2],
        output_shape=[1, 3, 8, 10],
    ),
    transpose_case(
        "2-D custom with output_shape",
        XT2,
        TW2,
        B3,
        pad_type="custom",
        pad=[1, 1, 0, 1],
        strides=[2, 2],
        output_shape=[1, 3, 5, 8],
    ),
    transpose_case("3-D valid stride 2x1x2, bias", XT3, TW3, B3[:2], strides=[2, 1, 2]),
    transpose_case("3-D same stride 1x2x2", XT3, TW3, pad_type="same", strides=[1, 2, 2]),
    transpose_case(
        "3-D custom [1, 0, 0, 1, 1, 1]", XT3, TW3, pad_type="custom", pad=[1, 0, 0, 1, 1, 1]
    ),
    transpose_case(
        "2-D iOS15 same stride 2", XT2, TW2, B3, pad_type="same", strides=[2, 2], opset="iOS15"
    ),
    Case(
        "conv_transpose",
        "iOS17 weight computed (a program input)",
        {"x": XT2, "w": TW2},
        lambda x, w: mb.conv_transpose(x=x, weight=w, bias=lit(x, B3), strides=[2, 2]),
        reference=lambda x, w: conv_transpose_ref(x, w, B3, strides=[2, 2]),
        opset="iOS17",
        tolerance=2.0,
    ),
]

# --------------------------------------------------------------------------- linear, matmul
LW, LB = exact16(5, 4), exact16(5)
A = rng.normal(size=(2, 3, 4)).astype(np.float32)
M = rng.normal(size=(4, 5)).astype(np.float32)
I_A = rng.integers(-50, 50, size=(2, 3, 4)).astype(np.int32)
I_B = rng.integers(-50, 50, size=(4, 2)).astype(np.int32)

CASES += [
    Case(
        "linear",
        "rank 2, bias",
        {"x": A[0]},
        lambda x: mb.linear(x=x, weight=lit(x, LW), bias=lit(x, LB)),
    ),
    Case("linear", "rank 3, no bias", {"x": A}, lambda x: mb.linear(x=x, weight=lit(x, LW))),
    Case(
        "linear",
        "rank 1",
        {"x": A[0, 0]},
        lambda x: mb.linear(x=x, weight=lit(x, LW), bias=lit(x, LB)),
    ),
    Case(
        "linear",
        "iOS17 fp32 weight (with fp16 x: a mix)",
        {"x": A},
        lambda x: mb.linear(x=x, weight=LW, bias=LB),
        opset="iOS17",
    ),
    Case(
        "linear",
        "int32 x, weight and bias",
        {"x": I_A},
        lambda x: mb.linear(x=x, weight=I_B.T.copy(), bias=np.array([3, -4], np.int32)),
        dtypes=("fp32",),
    ),
    Case(
        "linear",
        "iOS17 fp32 x, int32 weight",
        {"x": A},
        lambda x: mb.linear(x=x, weight=I_B.T.copy()),
        opset="iOS17",
    ),
    Case("matmul", "rank 3 x rank 2", {"x": A, "y": M}, lambda x, y: mb.matmul(x=x, y=y)),
    Case(
        "matmul",
        "transpose_x",
        {"x": A, "y": rng.normal(size=(2, 3, 5)).astype(np.float32)},
        lambda x, y: mb.matmul(x=x, y=y, transpose_x=True),
    ),
    Case(
        "matmul",
        "transpose_y, batch broadcast (2,1,3,4) x (5,4)",
        {"x": A[:, None], "y": M.T.copy()},
        lambda x, y: mb.matmul(x=x, y=y, transpose_y=True),
    ),
    Case(
        "matmul",
        "transpose_x and transpose_y",
        {
            "x": rng.normal(size=(1, 4, 3)).astype(np.float32),
            "y": rng.normal(size=(3, 5, 4)).astype(np.float32),
        },
        lambda x, y: mb.matmul(x=x, y=y, transpose_x=True, transpose_y=True),
    ),
    Case(
        "matmul",
        "batch broadcast (2,1,3,4) x (1,3,4,2)",
        {"x": A[:, None], "y": rng.normal(size=(1, 3, 4, 2)).astype(np.float32)},
        lambda x, y: mb.matmul(x=x, y=y),
    ),
    # MIL's type inference cannot build a rank-1 y (it reads y's axis -2).
    Case(
        "matmul",
        "rank 1 x rank 3",
        {"x": A[0, 0], "y": rng.normal(size=(2, 4, 3)).astype(np.float32)},
        lambda x, y: mb.matmul(x=x, y=y),
    ),
    Case("matmul", "constant y", {"x": A}, lambda x: mb.matmul(x=x, y=lit(x, LW.T.copy()))),
    Case(
        "matmul",
        "int32 x int32",
        {"x": I_A, "y": I_B},
        lambda x, y: mb.matmul(x=x, y=y),
        dtypes=("fp32",),
    ),
    Case(
        "matmul",
        "iOS17 float x, constant int32 y (float result)",
        {"x": A},
        lambda x: mb.matmul(x=x, y=I_B),
        reference=lambda x: x @ I_B,
        opset="iOS17",
    ),
    Case(
        "matmul",
        "iOS17 constant fp32 y with fp16 x (a mix)",
        {"x": A},
        lambda x: mb.matmul(x=x, y=LW.T.copy()),
        reference=lambda x: x @ LW.T,
        opset="iOS17",
    ),
]

E_X = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
E_Y = rng.normal(size=(1, 5, 4, 2)).astype(np.float32)
CASES += [
    Case(
        "einsum",
        "nchw,nwhu->nchu, n broadcast",
        {"x": E_X, "y": E_Y},
        lambda x, y: mb.einsum(values=(x, y), equation="nchw,nwhu->nchu"),
    ),
    Case(
        "einsum",
        "abcd,adce->abce (renamed), h broadcast",
        {"x": E_X[:, :, :1], "y": E_Y},
        lambda x, y: mb.einsum(values=(x, y), equation="abcd,adce->abce"),
    ),
    Case(
        "einsum",
        "chw,whr->chr",
        {"x": E_X[0], "y": E_Y[0]},
        lambda x, y: mb.einsum(values=(x, y), equation="chw,whr->chr"),
    ),
    Case(
        "einsum",
        "rank 3, h broadcast",
        {"x": E_X[0], "y": E_Y[0, :, :1]},
        lambda x, y: mb.einsum(values=(x, y), equation="ijk,kjl->ijl"),
    ),
]

REFUSALS = [
    Refusal(
        "conv_transpose",
        "pad_type=same_lower",
        {"x": XT2},
        lambda x: mb.conv_transpose(
            x=x,
            weight=lit(x, TW2),
            pad_type="same_lower",
            strides=[2, 2],
            output_shape=[1, 3, 6, 8],
        ),
        "pad_type='same_lower'",
    ),
    Refusal(
        "linear",
        "iOS17 int32 x with fp32 weight (int32 result)",
        {"x": I_A},
        lambda x: mb.linear(x=x, weight=LW),
        "an int32 result from float",
        opset="iOS17",
    ),
    Refusal(
        "matmul",
        "iOS17 int32 x with constant fp32 y (int32 result)",
        {"x": I_A},
        lambda x: mb.matmul(x=x, y=M),
        "an int32 result from float",
        opset="iOS17",
    ),
    Refusal(
        "einsum",
        "int32 operands",
        {"x": I_A[None], "y": I_A[None].swapaxes(1, 3).copy()},
        lambda x, y: mb.einsum(values=(x, y), equation="nchw,nwhu->nchu"),
        "int32 operands",
    ),
]
