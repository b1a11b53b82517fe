"""Conformance cases: pooling (``pool.py``): max_pool, avg_pool, l2_pool. MIL has no value
inference for pooling; the reference walks every window as the op's definition describes
(output sizes from ``avg_pool``'s Returns section, padding counted as zeros)."""

from __future__ import annotations

import itertools
import math

import numpy as np
from coremltools.converters.mil import Builder as mb
from mil_conformance import Case, Refusal

rng = np.random.default_rng(5)
X1 = rng.normal(size=(1, 2, 7)).astype(np.float32)
X2 = rng.normal(size=(1, 2, 5, 6)).astype(np.float32)
X3 = rng.normal(size=(1, 2, 4, 5, 3)).astype(np.float32)


def mil_pads(pad_type: str, pad: list[int] | None, sizes, kernel, strides) -> list[int]:
    pads = []
    for i, size in enumerate(sizes):
        if pad_type == "custom":
            pads += pad[2 * i : 2 * i + 2]
        elif pad_type == "valid":
            pads += [0, 0]
        else:
            total = max(
                0, strides[i] * math.ceil(size / strides[i]) - size + kernel[i] - strides[i]
            )
            small, large = total // 2, total - total // 2
            pads += [small, large] if pad_type == "same" else [large, small]
    return pads


def pooled(
    x, kind, kernel, strides=None, pad_type="valid", pad=None, ceil_mode=False, exclude=False
):
    n = len(kernel)
    strides = strides or [1] * n
    sizes = x.shape[2:]
    pads = mil_pads(pad_type, pad, sizes, kernel, strides)
    outs = []
    for i, size in enumerate(sizes):
        total = pads[2 * i] + pads[2 * i + 1]
        if ceil_mode:
            out = math.ceil((size + total - kernel[i]) / strides[i]) + 1
            if (out - 1) * strides[i] >= size + pads[2 * i] and total > 0:
                out -= 1
        else:
            out = math.floor((size + total - kernel[i]) / strides[i]) + 1
        outs.append(out)
    result = np.zeros((*x.shape[:2], *outs))
    for index in itertools.product(*(range(o) for o in outs)):
        starts = [index[i] * strides[i] - pads[2 * i] for i in range(n)]
        # The window, clipped to the padded input (ceil mode's last window may overhang it).
        spans = [(s, min(s + kernel[i], sizes[i] + pads[2 * i + 1])) for i, s in enumerate(starts)]
        real = tuple(slice(max(a, 0), min(b, sizes[i])) for i, (a, b) in enumerate(spans))
        values = x[(slice(None), slice(None), *real)].reshape(*x.shape[:2], -1)
        if kind == "max":
            value = values.max(axis=-1)
        elif kind == "l2":
            value = np.sqrt((values**2).sum(axis=-1))
        else:
            count = values.shape[-1] if exclude else math.prod(b - a for a, b in spans)
            value = values.sum(axis=-1) / count
        result[(slice(None), slice(None), *index)] = value
    return result


def _build(kind, kernel, strides, pad_type, pad, ceil_mode, exclude):
    def build(x):
        args = {"x": x, "kernel_sizes": kernel, "pad_type": pad_type}
        if strides is not None:
            args["strides"] = strides
        if pad is not None:
            args["pad"] = pad
        if ceil_mode:
            args["ceil_mode"] = True
        if exclude:
            args["exclude_padding_from_average"] = True
        return getattr(mb, f"{kind}_pool")(**args)

    return build


# (label, x, kernel, strides, pad_type, pad, ceil_mode)
CONFIGS = [
    ("1-D valid, default strides", X1, [3], None, "valid", None, False),
    ("1-D same, stride 2", X1, [4], [2], "same", None, False),
    ("1-D same_lower, stride 2", X1, [4], [2], "same_lower", None, False),
    ("1-D custom [2, 1]", X1, [3], [2], "custom", [2, 1], False),
    ("1-D valid ceil_mode (overhanging last window)", X1, [3], [3], "valid", None, True),
    ("2-D valid k 2x3 s 2x1", X2, [2, 3], [2, 1], "valid", None, False),
    ("2-D same k 3x2 s 2x2 (odd and even padding)", X2, [3, 2], [2, 2], "same", None, False),
    ("2-D same_lower k 3x2 s 2x2", X2, [3, 2], [2, 2], "same_lower", None, False),
    ("2-D same k 2x2 s 1", X2, [2, 2], None, "same", None, False),
    ("2-D custom asymmetric [1, 0, 0, 2]", X2, [2, 3], [1, 2], "custom", [1, 0, 0, 2], False),
    ("2-D valid ceil_mode s 2", X2, [2, 2], [2, 2], "valid", None, True),
    ("2-D custom [1, 1, 1, 1] ceil_mode s 2", X2, [3, 3], [2, 2], "custom", [1, 1, 1, 1], True),
    (
        "2-D custom [1, 1, 0, 0] ceil_mode: MIL drops the last window",
        X2,
        [2, 2],
        [3, 2],
        "custom",
        [1, 1, 0, 0],
        True,
    ),
    ("3-D valid k 2x2x2 s 2x1x1", X3, [2, 2, 2], [2, 1, 1], "valid", None, False),
    ("3-D same k 3x2x2 s 1x2x2", X3, [3, 2, 2], [1, 2, 2], "same", None, False),
    ("3-D custom [1, 0, 0, 1, 1, 1]", X3, [2, 2, 3], None, "custom", [1, 0, 0, 1, 1, 1], False),
]

CASES = []
for label, x, kernel, strides, pad_type, pad, ceil in CONFIGS:
    kinds = ["max", "avg"] + (["l2"] if x.ndim <= 4 else [])
    for kind in kinds:
        excludes = [False, True] if kind == "avg" and (pad_type != "valid") else [False]
        for exclude in excludes:
            CASES.append(
                Case(
                    f"{kind}_pool",
                    label + (" exclude_padding_from_average" if exclude else ""),
                    {"x": x},
                    _build(kind, kernel, strides, pad_type, pad, ceil, exclude),
                    reference=lambda x, a=(kind, kernel, strides, pad_type, pad, ceil, exclude): (
                        pooled(x, *a)
                    ),
                    exact=kind == "max",
                )
            )

REFUSALS = [
    Refusal(
        f"{kind}_pool",
        "ceil_mode without padding, last window wholly outside the input",
        {"x": X1[..., :5]},
        _build(kind, [1], [5], "valid", None, True, False),
        "wholly outside",
    )
    for kind in ("max", "avg", "l2")
]
