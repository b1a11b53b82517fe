"""Conformance cases: elementwise ops (``elementwise_binary.py``, ``elementwise_unary.py``,
``activation.py``, ``select`` of ``control_flow.py``)."""

from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from mil_conformance import Case, Refusal, lit

rng = np.random.default_rng(0)
SHAPE = (1, 3, 4, 5)
X = rng.normal(size=SHAPE).astype(np.float32) * 3
Y = rng.normal(size=SHAPE).astype(np.float32) * 3
POS = np.abs(X) + 0.1
UNIT = np.tanh(X).astype(np.float32) * 0.99  # inside (-1, 1)
# Half-integers: exact at fp16, so comparisons see ties and rounding sees .5 cases.
HALVES = np.round(X * 2) / 2
HALVES_Y = np.round(Y * 2) / 2
ROUNDING = np.array([[-2.5, -1.5, -0.5, -0.0, 0.5, 1.5, 2.5, 3.7, -3.7, 0.49]], np.float32)
WITH_ZERO = np.concatenate([np.zeros((1, 1, 4, 5), np.float32), POS[:, 1:]], axis=1)
SPECIAL = np.array([[np.nan, -np.inf, np.inf, -0.0, 0.0, -2.0, 3.0, 1e-3]], np.float32)
# Divisors away from 0, both signs; dividends hitting exact multiples.
DIVISOR = np.where(np.abs(Y) < 0.5, 1.5, Y).astype(np.float32)
DIVIDEND = np.concatenate([X[:, :2], DIVISOR[:, 2:] * 3], axis=1)

XI = rng.integers(-20, 20, size=SHAPE).astype(np.int32)
YI = rng.integers(-7, 8, size=SHAPE).astype(np.int32)
YI[YI == 0] = 3  # no division by zero
EXPONENT = rng.integers(0, 5, size=SHAPE).astype(np.int32)
BASE = rng.integers(-5, 6, size=SHAPE).astype(np.int32)
COND = rng.random(SHAPE) > 0.5
COND_Y = rng.random(SHAPE) > 0.5
CHANNEL = np.array([0.5, -1.0, 2.0], np.float32)  # per-channel constant, (3, 1, 1) broadcast


def _binary_case(op: str, label: str, inputs: dict, **kwargs) -> Case:
    return Case(op, label, inputs, lambda x, y: getattr(mb, op)(x=x, y=y), **kwargs)


def _binary_cases() -> list[Case]:
    cases: list[Case] = []
    for op in ("add", "sub", "mul", "maximum", "minimum"):
        cases += [
            _binary_case(op, "tensor, tensor", {"x": X, "y": Y}),
            Case(
                op,
                "tensor, broadcast constant",
                {"x": X},
                lambda x, op=op: getattr(mb, op)(x=x, y=lit(x, CHANNEL.reshape(3, 1, 1))),
            ),
            Case(
                op, "scalar, tensor", {"y": Y}, lambda y, op=op: getattr(mb, op)(x=lit(y, 1.5), y=y)
            ),
            _binary_case(op, "int32", {"x": XI, "y": YI}, exact=True, dtypes=("fp32",)),
        ]
    cases += [
        _binary_case(
            "add", "broadcast inputs (1,3,1,5)+(4,1)", {"x": X[:, :, :1, :], "y": Y[0, 0, :, :1]}
        ),
        _binary_case("real_div", "floats", {"x": X, "y": DIVISOR}),
        Case("real_div", "by a scalar", {"x": X}, lambda x: mb.real_div(x=x, y=lit(x, 3.0))),
        # int32 / int32 is int32: the quotient truncated toward 0 (-7 / 2 = -3).
        _binary_case(
            "real_div", "int32 truncates toward 0", {"x": XI, "y": YI}, exact=True, dtypes=("fp32",)
        ),
        _binary_case("floor_div", "floats, negative operands", {"x": DIVIDEND, "y": DIVISOR}),
        _binary_case(
            "floor_div",
            "int32, negative operands",
            {"x": XI, "y": YI},
            exact=True,
            dtypes=("fp32",),
        ),
        _binary_case("mod", "floats, negative operands (sign of y)", {"x": DIVIDEND, "y": DIVISOR}),
        _binary_case(
            "mod",
            "int32, negative operands (sign of y)",
            {"x": XI, "y": YI},
            exact=True,
            dtypes=("fp32",),
        ),
        _binary_case("pow", "positive base, float exponent", {"x": POS, "y": Y / 3}),
        Case(
            "pow",
            "negative base, integral exponents",
            {"x": X},
            lambda x: mb.pow(x=x, y=lit(x, np.array([2.0, 3.0, -1.0]).reshape(3, 1, 1))),
        ),
        Case("pow", "scalar exponent 0.5", {"x": POS}, lambda x: mb.pow(x=x, y=lit(x, 0.5))),
        _binary_case(
            "pow",
            "int32, non-negative exponent",
            {"x": BASE, "y": EXPONENT},
            exact=True,
            dtypes=("fp32",),
        ),
    ]
    for op in ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal"):
        cases += [
            _binary_case(op, "floats with ties", {"x": HALVES, "y": HALVES_Y}, exact=True),
            Case(
                op,
                "against a scalar",
                {"x": HALVES},
                lambda x, op=op: getattr(mb, op)(x=x, y=lit(x, 0.5)),
                exact=True,
            ),
            _binary_case(op, "int32", {"x": XI, "y": YI}, exact=True, dtypes=("fp32",)),
        ]
    for op in ("logical_and", "logical_or", "logical_xor"):
        cases += [
            _binary_case(op, "bool", {"x": COND, "y": COND_Y}, exact=True, dtypes=("fp32",)),
            Case(
                op,
                "bool, broadcast",
                {"x": COND},
                lambda x, op=op: getattr(mb, op)(x=x, y=np.array([True, False, True, False, True])),
                exact=True,
                dtypes=("fp32",),
            ),
        ]
    return cases


def _unary_case(op: str, inputs: np.ndarray, label: str = "", **kwargs) -> Case:
    return Case(op, label, {"x": inputs}, lambda x: getattr(mb, op)(x=x), **kwargs)


def _unary_cases() -> list[Case]:
    return [
        _unary_case("sqrt", POS),
        _unary_case("square", X),
        _unary_case("square", XI, "int32", exact=True, dtypes=("fp32",)),
        _unary_case("exp", X),
        _unary_case("exp2", X),
        # int32: 2 ** x truncated, so negative exponents give 0.
        _unary_case("exp2", (XI // 2).astype(np.int32), "int32", exact=True, dtypes=("fp32",)),
        _unary_case("abs", X, exact=True),
        _unary_case("abs", XI, "int32", exact=True, dtypes=("fp32",)),
        _unary_case(
            "sign", np.concatenate([SPECIAL, ROUNDING], axis=1), "NaN, ±0, ±inf", exact=True
        ),
        _unary_case("sign", XI, "int32", exact=True, dtypes=("fp32",)),
        _unary_case("ceil", np.concatenate([ROUNDING, SPECIAL], axis=1), exact=True),
        _unary_case("floor", np.concatenate([ROUNDING, SPECIAL], axis=1), exact=True),
        _unary_case("round", ROUNDING, "half to even", exact=True),
        _unary_case("round", X, "normal values", exact=True),
        _unary_case("sin", X),
        _unary_case("cos", X),
        _unary_case("tan", UNIT),
        _unary_case("asin", UNIT),
        _unary_case("acos", UNIT),
        _unary_case("atan", X),
        _unary_case("sinh", X),
        _unary_case("cosh", X),
        _unary_case("tanh", X),
        _unary_case("atanh", UNIT),
        _unary_case("erf", X),
        _unary_case("logical_not", COND, exact=True, dtypes=("fp32",)),
        _unary_case("sigmoid", X),
        _unary_case("relu", X, exact=True),
        _unary_case("relu6", X * 2, exact=True),
        _unary_case("softplus", X * 4),
        _unary_case("softsign", X),
        # silu has no value inference: x * sigmoid(x).
        Case(
            "silu", "", {"x": X}, lambda x: mb.silu(x=x), reference=lambda x: x / (1 + np.exp(-x))
        ),
        # Default epsilons are of x's type: fp16(1e-12) = fp16(1e-45) = 0.
        _unary_case("rsqrt", WITH_ZERO, "default epsilon, zeros"),
        Case(
            "rsqrt", "epsilon=0.5", {"x": WITH_ZERO}, lambda x: mb.rsqrt(x=x, epsilon=lit(x, 0.5))
        ),
        _unary_case("inverse", X, "default epsilon"),
        Case(
            "inverse", "epsilon=0.25", {"x": POS}, lambda x: mb.inverse(x=x, epsilon=lit(x, 0.25))
        ),
        _unary_case("log", WITH_ZERO, "default epsilon, zeros"),
        Case("log", "epsilon=1", {"x": WITH_ZERO}, lambda x: mb.log(x=x, epsilon=lit(x, 1.0))),
        # iOS17: epsilon may be fp32 on an fp16 x.
        Case(
            "log",
            "fp32 epsilon=1e-3",
            {"x": WITH_ZERO},
            lambda x: mb.log(x=x, epsilon=np.float32(1e-3)),
        ),
    ]


def _activation_cases() -> list[Case]:
    return [
        Case(
            "clip",
            "[-2, 3]",
            {"x": X},
            lambda x: mb.clip(x=x, alpha=lit(x, -2.0), beta=lit(x, 3.0)),
            exact=True,
        ),
        Case(
            "threshold",
            "alpha=0.5",
            {"x": HALVES},
            lambda x: mb.threshold(x=x, alpha=lit(x, 0.5)),
            exact=True,
        ),
        Case(
            "threshold",
            "int32",
            {"x": XI},
            lambda x: mb.threshold(x=x, alpha=np.int32(-3)),
            exact=True,
            dtypes=("fp32",),
        ),
        Case("leaky_relu", "alpha=0.1", {"x": X}, lambda x: mb.leaky_relu(x=x, alpha=lit(x, 0.1))),
        Case(
            "leaky_relu",
            "fp32 alpha (iOS17)",
            {"x": X},
            lambda x: mb.leaky_relu(x=x, alpha=np.float32(0.3)),
        ),
        Case("elu", "alpha=1", {"x": X}, lambda x: mb.elu(x=x, alpha=lit(x, 1.0))),
        Case("elu", "alpha=0.5", {"x": X}, lambda x: mb.elu(x=x, alpha=lit(x, 0.5))),
        Case(
            "prelu",
            "rank 4, per channel",
            {"x": X},
            lambda x: mb.prelu(x=x, alpha=lit(x, [0.1, -0.5, 2.0])),
        ),
        Case(
            "prelu",
            "rank 3, one alpha",
            {"x": X[0]},
            lambda x: mb.prelu(x=x, alpha=lit(x, [0.25] * 4)),
        ),
        Case(
            "prelu",
            "rank 5, one alpha",
            {"x": X.reshape(1, 3, 2, 2, 5)},
            lambda x: mb.prelu(x=x, alpha=lit(x, [0.25] * 3)),
        ),
        # MIL's reference overflows exp() in fp16 beyond beta * x = 11; stay below.
        Case(
            "softplus_parametric",
            "rank 4",
            {"x": X / 2},
            lambda x: mb.softplus_parametric(
                x=x, alpha=lit(x, [0.5, 1.0, 2.0]), beta=lit(x, [1.0, -0.5, 3.0])
            ),
        ),
        Case(
            "softplus_parametric",
            "rank 3",
            {"x": X[0]},
            lambda x: mb.softplus_parametric(
                x=x, alpha=lit(x, [0.5, 1.0, 2.0, 1.5]), beta=lit(x, [1.0, -0.5, 3.0, 0.25])
            ),
        ),
        Case(
            "clamped_relu",
            "alpha=0.1, beta=4",
            {"x": X},
            lambda x: mb.clamped_relu(x=x, alpha=lit(x, 0.1), beta=lit(x, 4.0)),
        ),
        Case(
            "clamped_relu",
            "alpha=-2, beta=0",
            {"x": X},
            lambda x: mb.clamped_relu(x=x, alpha=lit(x, -2.0), beta=lit(x, 0.0)),
        ),
        Case(
            "scaled_tanh",
            "alpha=2, beta=0.5",
            {"x": X},
            lambda x: mb.scaled_tanh(x=x, alpha=lit(x, 2.0), beta=lit(x, 0.5)),
        ),
        Case(
            "linear_activation",
            "alpha=-1.5, beta=0.25",
            {"x": X},
            lambda x: mb.linear_activation(x=x, alpha=lit(x, -1.5), beta=lit(x, 0.25)),
        ),
        Case(
            "sigmoid_hard",
            "alpha=0.2, beta=0.5",
            {"x": X},
            lambda x: mb.sigmoid_hard(x=x, alpha=lit(x, 0.2), beta=lit(x, 0.5)),
        ),
        Case(
            "sigmoid_hard",
            "alpha=1/6, beta=0.5 (hard swish)",
            {"x": X},
            lambda x: mb.sigmoid_hard(x=x, alpha=lit(x, 1 / 6), beta=lit(x, 0.5)),
        ),
        # MIL keeps x >= alpha (torch's threshold would drop x == alpha).
        Case(
            "thresholded_relu",
            "alpha=1, x >= alpha kept",
            {"x": HALVES},
            lambda x: mb.thresholded_relu(x=x, alpha=lit(x, 1.0)),
            exact=True,
        ),
        Case(
            "thresholded_relu",
            "alpha=-0.5",
            {"x": HALVES},
            lambda x: mb.thresholded_relu(x=x, alpha=lit(x, -0.5)),
            exact=True,
        ),
        Case("gelu", "default mode (EXACT)", {"x": X}, lambda x: mb.gelu(x=x)),
        Case("gelu", "EXACT", {"x": X}, lambda x: mb.gelu(x=x, mode="EXACT")),
        Case(
            "gelu",
            "TANH_APPROXIMATION",
            {"x": X},
            lambda x: mb.gelu(x=x, mode="TANH_APPROXIMATION"),
        ),
        Case(
            "gelu",
            "SIGMOID_APPROXIMATION",
            {"x": X},
            lambda x: mb.gelu(x=x, mode="SIGMOID_APPROXIMATION"),
        ),
        Case("softmax", "default axis (-1)", {"x": X * 3}, lambda x: mb.softmax(x=x)),
        Case("softmax", "axis=1", {"x": X * 3}, lambda x: mb.softmax(x=x, axis=1)),
        Case("softmax", "axis=-2", {"x": X * 3}, lambda x: mb.softmax(x=x, axis=-2)),
        Case("softmax", "axis=0 (size 1)", {"x": X}, lambda x: mb.softmax(x=x, axis=0)),
    ]


def _in_place_cases() -> list[Case]:
    """Ops with an in-place variant run it on a fresh input read by nothing else: x * 2 first."""

    def after_mul(op: str, **attrs: float):  # type: ignore[no-untyped-def]
        def build(x):  # type: ignore[no-untyped-def]
            fresh = mb.mul(x=x, y=lit(x, 2.0))
            return getattr(mb, op)(x=fresh, **{k: lit(x, v) for k, v in attrs.items()})

        return build

    return [
        Case("relu", "in place", {"x": X}, after_mul("relu"), exact=True),
        Case("sigmoid", "in place", {"x": X}, after_mul("sigmoid")),
        Case("tanh", "in place", {"x": X}, after_mul("tanh")),
        Case("relu6", "in place", {"x": X}, after_mul("relu6"), exact=True),
        Case("clip", "in place", {"x": X}, after_mul("clip", alpha=-1.0, beta=2.5), exact=True),
        Case("threshold", "in place", {"x": X}, after_mul("threshold", alpha=-0.5), exact=True),
        Case(
            "threshold",
            "int32 in place",
            {"x": XI},
            lambda x: mb.threshold(x=mb.mul(x=x, y=np.int32(3)), alpha=np.int32(-7)),
            exact=True,
            dtypes=("fp32",),
        ),
    ]


def _select_cases() -> list[Case]:
    return [
        Case(
            "select",
            "floats",
            {"cond": COND, "a": X, "b": Y},
            lambda cond, a, b: mb.select(cond=cond, a=a, b=b),
            exact=True,
        ),
        Case(
            "select",
            "broadcast cond and scalar b",
            {"cond": COND[:, :, :, :1], "a": X},
            lambda cond, a: mb.select(cond=cond, a=a, b=lit(a, -1.25)),
            exact=True,
        ),
        Case(
            "select",
            "int32",
            {"cond": COND, "a": XI, "b": YI},
            lambda cond, a, b: mb.select(cond=cond, a=a, b=b),
            exact=True,
            dtypes=("fp32",),
        ),
        Case(
            "select",
            "bool",
            {"cond": COND, "a": COND_Y},
            lambda cond, a: mb.select(cond=cond, a=a, b=np.logical_not(COND_Y)),
            exact=True,
            dtypes=("fp32",),
        ),
    ]


IN_RANGE = np.array([[-128.9, -100.5, -1.7, -0.2, 0.0, 0.7, 1.99, 100.5, 127.9]], np.float32)
BYTE = np.array([[0.0, 0.9, 1.5, 17.2, 128.4, 254.99, 255.0]], np.float32)
WIDE = np.array(
    [[-70000, -32769, -300, -129, -1, 0, 1, 127, 128, 255, 256, 40000, 70000]], np.int32
)


def _cast_case(dtype: str, inputs: np.ndarray, label: str, **kwargs) -> Case:
    kwargs.setdefault("exact", True)
    return Case(
        "cast", f"{label} → {dtype}", {"x": inputs}, lambda x: mb.cast(x=x, dtype=dtype), **kwargs
    )


def _cast_cases() -> list[Case]:
    fine = (X * 1000).astype(np.float32)  # values with more bits than fp16 holds
    return [
        _cast_case("fp16", fine, "float", dtypes=("fp32",)),
        _cast_case(
            "fp16",
            np.array([[1e5, -1e5, 65519.0, 65520.0, 6e-8, 1e-8]], np.float32),
            "float beyond fp16's range",
            dtypes=("fp32",),
        ),
        _cast_case("fp32", X, "float"),
        _cast_case("int32", X * 10, "float (truncates toward 0)"),
        _cast_case("int32", IN_RANGE, "float, negative fractions"),
        _cast_case("bool", np.concatenate([SPECIAL, ROUNDING], axis=1), "float (NaN is true)"),
        _cast_case("int8", IN_RANGE, "float"),
        _cast_case("uint8", BYTE, "float"),
        _cast_case("int16", IN_RANGE * 200, "float", dtypes=("fp32",)),
        _cast_case("uint16", BYTE * 200, "float", dtypes=("fp32",)),
        _cast_case("fp32", WIDE, "int32", dtypes=("fp32",)),
        _cast_case("fp16", WIDE, "int32 (inf beyond 65520)", dtypes=("fp32",)),
        _cast_case("bool", WIDE, "int32", dtypes=("fp32",)),
        _cast_case("int32", WIDE, "int32", dtypes=("fp32",)),
        # Narrow int targets wrap around (two's complement), as numpy's astype.
        _cast_case("int8", WIDE, "int32 (wraps)", dtypes=("fp32",)),
        _cast_case("uint8", WIDE, "int32 (wraps)", dtypes=("fp32",)),
        _cast_case("int16", WIDE, "int32 (wraps)", dtypes=("fp32",)),
        _cast_case("uint16", WIDE, "int32 (wraps)", dtypes=("fp32",)),
        _cast_case("fp32", COND, "bool", dtypes=("fp32",)),
        _cast_case("fp16", COND, "bool", dtypes=("fp32",)),
        _cast_case("int32", COND, "bool", dtypes=("fp32",)),
        _cast_case("uint8", COND, "bool", dtypes=("fp32",)),
        # Chains through the narrow types (their values come back as int32 / float).
        Case(
            "cast",
            "int32 → int8 → int32",
            {"x": WIDE},
            lambda x: mb.cast(x=mb.cast(x=x, dtype="int8"), dtype="int32"),
            exact=True,
            dtypes=("fp32",),
        ),
        Case(
            "cast",
            "int32 → uint16 → fp32",
            {"x": WIDE},
            lambda x: mb.cast(x=mb.cast(x=x, dtype="uint16"), dtype="fp32"),
            exact=True,
            dtypes=("fp32",),
        ),
        Case(
            "cast",
            "float → uint8 → int8",
            {"x": BYTE},
            lambda x: mb.cast(x=mb.cast(x=x, dtype="uint8"), dtype="int8"),
            exact=True,
        ),
        Case(
            "cast",
            "iOS15 float → int32",
            {"x": X * 10},
            lambda x: mb.cast(x=x, dtype="int32"),
            exact=True,
            opset="iOS15",
        ),
    ]


CASES = (
    _binary_cases()
    + _unary_cases()
    + _activation_cases()
    + _in_place_cases()
    + _select_cases()
    + _cast_cases()
)

REFUSALS = [
    # Its documented formula and its value inference disagree for beta < 0.
    Refusal(
        "clamped_relu",
        "beta < 0",
        {"x": X},
        lambda x: mb.clamped_relu(x=x, alpha=lit(x, 0.1), beta=lit(x, -1.0)),
        "is ambiguous in MIL",
    ),
]
