"""Conformance cases: activation quantization (``iOS17/quantization_ops.py``)."""

from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from mil_conformance import Case, Refusal, lit

rng = np.random.default_rng(2)
SHAPE = (1, 3, 4, 5)
X = (rng.normal(size=SHAPE) * 4).astype(np.float32)
SCALE = 0.05
CHANNEL_SCALE = np.array([0.03, 0.05, 0.1], np.float32)  # along axis 1
LAST_SCALE = np.array([0.02, 0.04, 0.06, 0.08, 0.1], np.float32)  # along axis -1
# Quotients on exact .5 ties (fp16-exact too): round half to even.
TIES = np.array([[-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 300.0, -300.0]], np.float32) * 0.25
INT8_CODES = rng.integers(-128, 128, size=SHAPE).astype(np.int32)
UINT8_CODES = rng.integers(0, 256, size=SHAPE).astype(np.int32)


def _exact_quantize(
    scale: np.ndarray | float, zero_point: np.ndarray | int | None, axis: int | None, dtype: str
):
    """The documented formula clip(round(x / scale) + zero_point), the quotient exact.

    MIL's value inference divides in the input's own type: at fp16 it may round a quotient
    onto a .5 tie that the exact quotient misses, so fp16 cases use this reference (with
    the scale as the program holds it, in fp16)."""
    low, high = (-128, 127) if dtype == "int8" else (0, 255)

    def reference(input: np.ndarray) -> np.ndarray:
        def laid(value: np.ndarray | float | int) -> np.ndarray:
            value = np.asarray(value)
            if value.ndim == 0:
                return value
            shape = [1] * input.ndim
            shape[axis % input.ndim] = -1
            return value.reshape(shape)

        q = np.round(input / laid(np.asarray(scale, np.float16)).astype(np.float64))
        if zero_point is not None:
            q = q + laid(zero_point)
        return np.clip(q, low, high).astype(np.int8 if dtype == "int8" else np.uint8)

    return reference


QUANTIZE_MODES = (
    ("int8, per tensor, zero point", SCALE, np.int8(3), None, "int8"),
    ("int8, per tensor, no zero point", SCALE, None, None, "int8"),
    ("uint8, per tensor, zero point", SCALE, np.uint8(128), None, "uint8"),
    ("uint8, per tensor, no zero point (negatives clip to 0)", SCALE, None, None, "uint8"),
    ("int8, axis=1, zero points", CHANNEL_SCALE, np.array([-5, 0, 7], np.int8), 1, "int8"),
    ("int8, axis=1, no zero point", CHANNEL_SCALE, None, 1, "int8"),
    (
        "uint8, axis=-1, zero points",
        LAST_SCALE,
        np.array([0, 64, 128, 192, 255], np.uint8),
        -1,
        "uint8",
    ),
    ("uint8, axis=3, no zero point", LAST_SCALE, None, 3, "uint8"),
)


def _quantize(scale, zero_point, axis, dtype):  # type: ignore[no-untyped-def]
    def build(input):  # type: ignore[no-untyped-def]
        extra = {} if zero_point is None else {"zero_point": zero_point}
        if axis is not None:
            extra["axis"] = axis
        return mb.quantize(input=input, scale=lit(input, scale), output_dtype=dtype, **extra)

    return build


def _laid(value: np.ndarray | float | int, rank: int, axis: int | None) -> np.ndarray:
    value = np.asarray(value)
    if value.ndim == 0 or axis is None:
        return value
    shape = [1] * rank
    shape[axis % rank] = -1
    return value.reshape(shape)


def _dequantize_of(codes_dtype: str, scale, zero_point, axis, scale_dtype):  # type: ignore[no-untyped-def]
    """int32 codes → cast to int8/uint8 (a computed input) → dequantize."""

    def build(codes):  # type: ignore[no-untyped-def]
        extra = {} if zero_point is None else {"zero_point": zero_point}
        if axis is not None:
            extra["axis"] = axis
        q = mb.cast(x=codes, dtype=codes_dtype)
        return mb.dequantize(input=q, scale=np.asarray(scale, scale_dtype), **extra)

    return build


def _dequantize_reference(scale, zero_point, axis, scale_dtype):  # type: ignore[no-untyped-def]
    """scale * (input - zero_point) in float32, then the scale's type (MIL has no value
    inference for dequantize; this is its documented formula as coremltools computes it)."""

    def reference(codes: np.ndarray) -> np.ndarray:
        x = codes.astype(np.float32)
        if zero_point is not None:
            x = x - _laid(zero_point, x.ndim, axis).astype(np.float32)
        scale_value = _laid(np.asarray(scale, scale_dtype), x.ndim, axis).astype(np.float32)
        return (x * scale_value).astype(scale_dtype)

    return reference


def _round_trip(x: np.ndarray) -> np.ndarray:
    """quantize (float32 quotient, as MIL at fp32) then dequantize, per channel."""
    scale = _laid(CHANNEL_SCALE, x.ndim, 1)
    zero_point = _laid(np.array([-5, 0, 7], np.float32), x.ndim, 1)
    q = np.clip(np.round(x.astype(np.float32) / scale) + zero_point, -128, 127)
    return (q - zero_point) * scale


def _cases() -> list[Case]:
    cases: list[Case] = []
    for label, scale, zero_point, axis, dtype in QUANTIZE_MODES:
        build = _quantize(scale, zero_point, axis, dtype)
        cases += [
            Case("quantize", label, {"input": X}, build, dtypes=("fp32",)),
            Case(
                "quantize",
                f"{label} (fp16, exact quotient)",
                {"input": X},
                build,
                reference=_exact_quantize(scale, zero_point, axis, dtype),
                dtypes=("fp16",),
            ),
        ]
    cases += [
        Case(
            "quantize", "half to even on ties", {"input": TIES}, _quantize(0.25, None, None, "int8")
        ),
        Case(
            "quantize",
            "half to even on ties, zero point",
            {"input": TIES},
            _quantize(0.25, np.int8(-1), None, "int8"),
        ),
    ]
    dequantize_modes = (
        ("int8, per tensor, zero point", "int8", INT8_CODES, 0.05, np.int8(3), None),
        ("int8, per tensor, no zero point", "int8", INT8_CODES, 0.05, None, None),
        ("uint8, per tensor, zero point", "uint8", UINT8_CODES, 0.02, np.uint8(128), None),
        ("uint8, per tensor, no zero point", "uint8", UINT8_CODES, 0.02, None, None),
        (
            "int8, axis=1, zero points",
            "int8",
            INT8_CODES,
            CHANNEL_SCALE,
            np.array([-5, 0, 7], np.int8),
            1,
        ),
        ("uint8, axis=-1, no zero point", "uint8", UINT8_CODES, LAST_SCALE, None, -1),
        (
            "uint8, axis=3, zero points",
            "uint8",
            UINT8_CODES,
            LAST_SCALE,
            np.array([0, 64, 128, 192, 255], np.uint8),
            3,
        ),
    )
    for label, codes_dtype, codes, scale, zero_point, axis in dequantize_modes:
        for scale_dtype in (np.float32, np.float16):
            name = "fp32" if scale_dtype is np.float32 else "fp16"
            cases.append(
                Case(
                    "dequantize",
                    f"{label}, {name} scale",
                    {"codes": codes},
                    _dequantize_of(codes_dtype, scale, zero_point, axis, scale_dtype),
                    reference=_dequantize_reference(scale, zero_point, axis, scale_dtype),
                    exact=True,
                    dtypes=("fp32",),
                )
            )
    zero_points = np.array([-5, 0, 7], np.int8)
    cases.append(
        Case(
            "dequantize",
            "after quantize, axis=1",
            {"x": X},
            lambda x: mb.dequantize(
                input=mb.quantize(
                    input=x,
                    scale=lit(x, CHANNEL_SCALE),
                    axis=1,
                    zero_point=zero_points,
                    output_dtype="int8",
                ),
                scale=lit(x, CHANNEL_SCALE),
                zero_point=zero_points,
                axis=1,
            ),
            reference=_round_trip,
            dtypes=("fp32",),
        )
    )
    return cases


CASES = _cases()
REFUSALS: list[Refusal] = []
