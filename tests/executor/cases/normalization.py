"""Conformance cases: normalisation (``normalization.py``). layer_norm and l2_norm have value
inference; batch_norm, instance_norm and local_response_norm are checked against numpy
written from their definitions. Parameters are fp16-exact values, so one array serves the
fp16 and fp32 programs and the iOS17 fp16/fp32 mixes (parameters of the other float type)."""

from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from mil_conformance import Case, Refusal, lit

rng = np.random.default_rng(11)


def exact16(*shape: int, positive: bool = False) -> np.ndarray:
    """Random float32 values that are exactly representable in fp16."""
    values = rng.normal(size=shape)
    values = np.abs(values) + 0.25 if positive else values
    return values.astype(np.float16).astype(np.float32)


X3 = rng.normal(size=(1, 3, 7)).astype(np.float32) * 2 + 0.5
X4 = rng.normal(size=(1, 3, 4, 5)).astype(np.float32) * 2 - 0.5
X5 = rng.normal(size=(1, 3, 2, 3, 4)).astype(np.float32)
X6 = rng.normal(size=(1, 2, 3, 4, 5)).astype(np.float32)
C = 3
MEAN, VAR, GAMMA, BETA = exact16(C), exact16(C, positive=True), exact16(C), exact16(C)
LN_GAMMA, LN_BETA = exact16(3, 5), exact16(3, 5)  # x4 over axes (1, 3)
HW_GAMMA, HW_BETA = exact16(4, 5), exact16(4, 5)  # x4 over axes (2, 3)
C_GAMMA = exact16(3)  # x4 over axis 1
R3_GAMMA = exact16(3, 7)  # x3 over axes (1, 2)


def layer_norm_ref(x, axes, gamma=None, beta=None, epsilon=1e-5):
    """The op's formula, in float64 (gamma/beta shaped as x on ``axes``, 1 elsewhere)."""
    axes = tuple(sorted(a % x.ndim for a in axes))
    shape = [x.shape[d] if d in axes else 1 for d in range(x.ndim)]
    centred = x - x.mean(axis=axes, keepdims=True)
    y = centred / np.sqrt((centred**2).mean(axis=axes, keepdims=True) + epsilon)
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


def channel(v: np.ndarray, rank: int) -> np.ndarray:
    return np.asarray(v, np.float64).reshape([1, -1] + [1] * (rank - 2))


def batch_norm_ref(x, gamma=None, beta=None, epsilon=1e-5, mean=MEAN, var=VAR):
    y = (x - channel(mean, x.ndim)) / np.sqrt(channel(var, x.ndim) + epsilon)
    if gamma is not None:
        y = y * channel(gamma, x.ndim)
    if beta is not None:
        y = y + channel(beta, x.ndim)
    return y


def instance_norm_ref(x, gamma=None, beta=None, epsilon=1e-5):
    axes = tuple(range(2, x.ndim))
    centred = x - x.mean(axis=axes, keepdims=True)
    y = centred / np.sqrt((centred**2).mean(axis=axes, keepdims=True) + epsilon)
    if gamma is not None:
        y = y * channel(gamma, x.ndim)
    if beta is not None:
        y = y + channel(beta, x.ndim)
    return y


def lrn_ref(x, size, alpha=1e-4, beta=0.75, k=1.0):
    out = np.zeros_like(x)
    channels = x.shape[1]
    half = (size - 1) // 2
    for c in range(channels):
        window = x[:, max(0, c - half) : min(channels, c + half + 1)]
        total = (window**2).sum(axis=1)
        out[:, c] = x[:, c] / (k + alpha / size * total) ** beta
    return out


def f16(v):
    return np.asarray(v, np.float16)


def f32(v):
    return np.asarray(v, np.float32)


CASES = [
    # batch_norm
    Case(
        "batch_norm",
        "rank 4, mean/variance only",
        {"x": X4},
        lambda x: mb.batch_norm(x=x, mean=lit(x, MEAN), variance=lit(x, VAR)),
        reference=lambda x: batch_norm_ref(x),
    ),
    Case(
        "batch_norm",
        "rank 3, gamma and beta, epsilon 1e-3",
        {"x": X3},
        lambda x: mb.batch_norm(
            x=x,
            mean=lit(x, MEAN),
            variance=lit(x, VAR),
            gamma=lit(x, GAMMA),
            beta=lit(x, BETA),
            epsilon=lit(x, 1e-3),
        ),
        reference=lambda x: batch_norm_ref(x, GAMMA, BETA, float(np.float16(1e-3))),
    ),
    Case(
        "batch_norm",
        "rank 5, gamma only",
        {"x": X5},
        lambda x: mb.batch_norm(x=x, mean=lit(x, MEAN), variance=lit(x, VAR), gamma=lit(x, GAMMA)),
        reference=lambda x: batch_norm_ref(x, GAMMA),
    ),
    Case(
        "batch_norm",
        "rank 4, beta only, iOS15",
        {"x": X4},
        lambda x: mb.batch_norm(x=x, mean=lit(x, MEAN), variance=lit(x, VAR), beta=lit(x, BETA)),
        reference=lambda x: batch_norm_ref(x, None, BETA),
        opset="iOS15",
    ),
    Case(
        "batch_norm",
        "iOS17 fp32 parameters (with fp16 x: a mix)",
        {"x": X4},
        lambda x: mb.batch_norm(
            x=x,
            mean=f32(MEAN),
            variance=f32(VAR),
            gamma=f32(GAMMA),
            beta=f32(BETA),
            epsilon=np.float32(1e-4),
        ),
        reference=lambda x: batch_norm_ref(x, GAMMA, BETA, float(np.float32(1e-4))),
        opset="iOS17",
    ),
    Case(
        "batch_norm",
        "iOS18 fp16 parameters (with fp32 x: a mix)",
        {"x": X4},
        lambda x: mb.batch_norm(
            x=x,
            mean=f16(MEAN),
            variance=f16(VAR),
            gamma=f16(GAMMA),
            beta=f16(BETA),
            epsilon=np.float16(1e-3),
        ),
        reference=lambda x: batch_norm_ref(x, GAMMA, BETA, float(np.float16(1e-3))),
    ),
    # instance_norm
    Case(
        "instance_norm",
        "rank 4, no gamma/beta",
        {"x": X4},
        lambda x: mb.instance_norm(x=x),
        reference=lambda x: instance_norm_ref(x),
    ),
    Case(
        "instance_norm",
        "rank 3, gamma and beta, epsilon 1e-2",
        {"x": X3},
        lambda x: mb.instance_norm(
            x=x, gamma=lit(x, GAMMA), beta=lit(x, BETA), epsilon=lit(x, 1e-2)
        ),
        reference=lambda x: instance_norm_ref(x, GAMMA, BETA, float(np.float16(1e-2))),
        tolerance=2.0,
    ),
    Case(
        "instance_norm",
        "rank 4, gamma only, iOS15",
        {"x": X4},
        lambda x: mb.instance_norm(x=x, gamma=lit(x, GAMMA)),
        reference=lambda x: instance_norm_ref(x, GAMMA),
        opset="iOS15",
        tolerance=2.0,
    ),
    Case(
        "instance_norm",
        "iOS17 fp32 gamma/beta (with fp16 x: a mix)",
        {"x": X4},
        lambda x: mb.instance_norm(x=x, gamma=f32(GAMMA), beta=f32(BETA), epsilon=np.float32(1e-5)),
        reference=lambda x: instance_norm_ref(x, GAMMA, BETA),
        opset="iOS17",
        tolerance=2.0,
    ),
    # layer_norm (value inference)
    # MIL cannot build layer_norm without axes (its default, range(rank), is not a valid
    # const), nor with beta but no gamma (its type inference reads gamma's shape).
    Case(
        "layer_norm",
        "every axis listed",
        {"x": X4},
        lambda x: mb.layer_norm(x=x, axes=[0, 1, 2, 3]),
        tolerance=2.0,
    ),
    Case(
        "layer_norm", "axes [-1]", {"x": X4}, lambda x: mb.layer_norm(x=x, axes=[-1]), tolerance=2.0
    ),
    Case(
        "layer_norm",
        "axes [2, 3] with gamma and beta",
        {"x": X4},
        lambda x: mb.layer_norm(x=x, axes=[2, 3], gamma=lit(x, HW_GAMMA), beta=lit(x, HW_BETA)),
        tolerance=2.0,
    ),
    Case(
        "layer_norm",
        "non-trailing axes [1, 3] with gamma and beta",
        {"x": X4},
        lambda x: mb.layer_norm(x=x, axes=[1, 3], gamma=lit(x, LN_GAMMA), beta=lit(x, LN_BETA)),
        tolerance=2.0,
    ),
    Case(
        "layer_norm",
        "non-trailing axes listed backwards [3, -3], gamma only",
        {"x": X4},
        lambda x: mb.layer_norm(x=x, axes=[3, -3], gamma=lit(x, LN_GAMMA)),
        tolerance=2.0,
    ),
    Case(
        "layer_norm",
        "axes [1] (middle axis), gamma and beta, epsilon 1e-2",
        {"x": X4},
        lambda x: mb.layer_norm(
            x=x,
            axes=[1],
            gamma=lit(x, C_GAMMA),
            beta=lit(x, C_GAMMA[::-1].copy()),
            epsilon=lit(x, 1e-2),
        ),
        tolerance=2.0,
    ),
    Case(
        "layer_norm",
        "rank 3 axes [1, 2], iOS15",
        {"x": X3},
        lambda x: mb.layer_norm(x=x, axes=[1, 2], gamma=lit(x, R3_GAMMA)),
        opset="iOS15",
        tolerance=2.0,
    ),
    Case(
        "layer_norm",
        "iOS17 fp32 gamma/beta (with fp16 x: a mix), axes [1, 3]",
        {"x": X4},
        lambda x: mb.layer_norm(
            x=x, axes=[1, 3], gamma=f32(LN_GAMMA), beta=f32(LN_BETA), epsilon=np.float32(1e-5)
        ),
        reference=lambda x: layer_norm_ref(x, [1, 3], LN_GAMMA, LN_BETA),
        opset="iOS17",
        tolerance=2.0,
    ),
    Case(
        "layer_norm",
        "iOS18 fp16 gamma/beta (with fp32 x: a mix), axes [0, 2]",
        {"x": X4},
        lambda x: mb.layer_norm(
            x=x, axes=[0, 2], gamma=f16(np.full((1, 4), 1.5)), beta=f16(np.full((1, 4), -0.5))
        ),
        reference=lambda x: layer_norm_ref(x, [0, 2], np.full((1, 4), 1.5), np.full((1, 4), -0.5)),
        tolerance=2.0,
    ),
    # l2_norm (value inference)
    Case("l2_norm", "rank 4 (one batch axis)", {"x": X4}, lambda x: mb.l2_norm(x=x), tolerance=2.0),
    Case(
        "l2_norm",
        "rank 5, epsilon 1e-2",
        {"x": X5},
        lambda x: mb.l2_norm(x=x, epsilon=lit(x, 1e-2)),
        tolerance=2.0,
    ),
    Case(
        "l2_norm", "rank 3 (the whole tensor)", {"x": X3}, lambda x: mb.l2_norm(x=x), tolerance=2.0
    ),
    Case(
        "l2_norm",
        "iOS17 fp32 epsilon",
        {"x": X4},
        lambda x: mb.l2_norm(x=x, epsilon=np.float32(0.5)),
        tolerance=2.0,
        opset="iOS17",
    ),
    # local_response_norm
    Case(
        "local_response_norm",
        "size 3, defaults, rank 4",
        {"x": X6[:, :, 0]},
        lambda x: mb.local_response_norm(x=x, size=3),
        reference=lambda x: lrn_ref(x, 3),
    ),
    Case(
        "local_response_norm",
        "size 1, rank 3",
        {"x": X3},
        lambda x: mb.local_response_norm(
            x=x, size=1, alpha=lit(x, 0.5), beta=lit(x, 0.5), k=lit(x, 2.0)
        ),
        reference=lambda x: lrn_ref(x, 1, 0.5, 0.5, 2.0),
    ),
    Case(
        "local_response_norm",
        "size 5 > channels, alpha 1, beta 0.75, k 1.5",
        {"x": X4},
        lambda x: mb.local_response_norm(x=x, size=5, alpha=lit(x, 1.0), k=lit(x, 1.5)),
        reference=lambda x: lrn_ref(x, 5, 1.0, 0.75, 1.5),
        tolerance=2.0,
    ),
    Case(
        "local_response_norm",
        "iOS17 fp32 alpha/beta/k",
        {"x": X4},
        lambda x: mb.local_response_norm(
            x=x, size=3, alpha=np.float32(0.25), beta=np.float32(1.5), k=np.float32(1.0)
        ),
        reference=lambda x: lrn_ref(x, 3, 0.25, 1.5, 1.0),
        opset="iOS17",
        tolerance=2.0,
    ),
]

REFUSALS = [
    Refusal(
        "local_response_norm",
        "even size",
        {"x": X4},
        lambda x: mb.local_response_norm(x=x, size=2),
        "even size=2",
    ),
]
