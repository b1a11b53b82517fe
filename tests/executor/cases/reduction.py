"""Conformance cases: reductions (``reduction.py``; iOS17's ``reduce_argmax/argmin``)."""

from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from mil_conformance import Case, Refusal

rng = np.random.default_rng(1)
SHAPE = (1, 3, 4, 5)
X = (rng.normal(size=SHAPE) * 2).astype(np.float32)
POS = (np.abs(X) + 0.5).astype(np.float32)
NEAR_ONE = (1 + rng.normal(size=SHAPE) * 0.1).astype(np.float32)  # products stay in range
XI = rng.integers(-9, 10, size=SHAPE).astype(np.int32)
POS_I = rng.integers(1, 6, size=SHAPE).astype(np.int32)
# Ties: argmax/argmin return the first of equal values.
TIES = np.round(X).astype(np.float32)
WITH_NAN = np.array([[1.0, np.nan, 3.0, np.nan], [-1.0, 2.0, -5.0, 0.0]], np.float32)

REDUCTIONS = (
    "reduce_sum",
    "reduce_mean",
    "reduce_max",
    "reduce_min",
    "reduce_prod",
    "reduce_l1_norm",
    "reduce_l2_norm",
    "reduce_log_sum",
    "reduce_log_sum_exp",
    "reduce_sum_square",
)
# Inputs each reduction is defined on (log_sum needs positive sums, prod bounded values).
FLOAT_INPUT = {"reduce_log_sum": POS, "reduce_prod": NEAR_ONE}
INT_INPUT = {"reduce_log_sum": POS_I, "reduce_prod": POS_I, "reduce_log_sum_exp": XI % 4}
# Selecting reductions are exact.
EXACT = ("reduce_max", "reduce_min")
AXES_MODES = (
    ("axes=[1]", {"axes": [1]}),
    ("axes=[-1] keep_dims", {"axes": [-1], "keep_dims": True}),
    ("axes=[1,3]", {"axes": [1, 3]}),
    ("axes=[-3,-1] keep_dims", {"axes": [-3, -1], "keep_dims": True}),
    ("axes=[2,1] unsorted", {"axes": [2, 1]}),
    ("axes omitted (all)", {}),
    ("axes omitted keep_dims", {"keep_dims": True}),
    ("axes=[] (none)", {"axes": np.zeros((0,), np.int32)}),
)


def _reduce(op: str, attrs: dict) -> object:
    return lambda x: getattr(mb, op)(x=x, **attrs)


def _reduction_cases() -> list[Case]:
    cases: list[Case] = []
    for op in REDUCTIONS:
        data = FLOAT_INPUT.get(op, X)
        exact = op in EXACT
        for label, attrs in AXES_MODES:
            cases.append(Case(op, label, {"x": data}, _reduce(op, attrs), exact=exact))
        cases.append(
            Case(
                op,
                "keep_dims=False given",
                {"x": data},
                _reduce(op, {"axes": [2], "keep_dims": False}),
                exact=exact,
            )
        )
        # int32 in, int32 out: real-valued results (mean, norms, logs) truncated toward 0.
        int_data = INT_INPUT.get(op, XI)
        for label, attrs in (
            ("int32 axes=[-1]", {"axes": [-1]}),
            ("int32 all", {}),
            ("int32 axes=[1,2] keep_dims", {"axes": [1, 2], "keep_dims": True}),
        ):
            cases.append(
                Case(op, label, {"x": int_data}, _reduce(op, attrs), exact=True, dtypes=("fp32",))
            )
    # Wrap-around: int32 sums and products that overflow are taken modulo 2^32 (numpy astype).
    big = np.full((1, 4, 3), 2**30, np.int32)
    cases.append(
        Case(
            "reduce_sum",
            "int32 overflow wraps",
            {"x": big},
            _reduce("reduce_sum", {}),
            exact=True,
            dtypes=("fp32",),
        )
    )
    cases.append(
        Case(
            "reduce_prod",
            "int32 overflow wraps",
            {"x": np.full((1, 2, 20), 7, np.int32)},
            _reduce("reduce_prod", {"axes": [1, 2]}),
            exact=True,
            dtypes=("fp32",),
        )
    )
    cases.append(
        Case(
            "reduce_mean",
            "int32 negative mean truncates toward 0",
            {"x": np.array([[-3, -4, 2], [5, 6, 6]], np.int32)},
            _reduce("reduce_mean", {"axes": [1]}),
            exact=True,
            dtypes=("fp32",),
        )
    )
    cases.append(
        Case(
            "reduce_log_sum_exp",
            "large values (no overflow)",
            {"x": X * 20},
            _reduce("reduce_log_sum_exp", {"axes": [1, 3]}),
        )
    )
    for op in ("reduce_max", "reduce_min", "reduce_sum"):
        cases.append(
            Case(op, "NaN propagates", {"x": WITH_NAN}, _reduce(op, {"axes": [1]}), exact=True)
        )
    return cases


def _arg_cases() -> list[Case]:
    cases: list[Case] = []
    for op in ("reduce_argmax", "reduce_argmin"):
        modes = (
            ("default axis (-1)", {}),
            ("axis=1", {"axis": 1}),
            ("axis=-2 keep_dims", {"axis": -2, "keep_dims": True}),
            ("axis=3 keep_dims=False", {"axis": 3, "keep_dims": False}),
            ("output_dtype=uint16", {"axis": 1, "output_dtype": "uint16"}),
            ("output_dtype=int32", {"axis": 2, "output_dtype": "int32"}),
        )
        for label, attrs in modes:
            cases.append(Case(op, label, {"x": X}, _reduce(op, attrs), exact=True))
        cases += [
            Case(op, "ties: first index", {"x": TIES}, _reduce(op, {"axis": 3}), exact=True),
            Case(
                op, "NaN wins (first one)", {"x": WITH_NAN}, _reduce(op, {"axis": -1}), exact=True
            ),
            Case(op, "int32", {"x": XI}, _reduce(op, {"axis": 1}), exact=True, dtypes=("fp32",)),
            Case(
                op,
                "iOS15 (no output_dtype)",
                {"x": X},
                _reduce(op, {"axis": -1}),
                exact=True,
                opset="iOS15",
            ),
        ]
    return cases


CASES = _reduction_cases() + _arg_cases()

REFUSALS = [
    # uint16 indices of an axis longer than 65536 cannot be held.
    Refusal(
        "reduce_argmax",
        "uint16 indices, axis of 70000",
        {"x": np.zeros((1, 70000), np.float32)},
        lambda x: mb.reduce_argmax(x=x, axis=1, output_dtype="uint16"),
        "uint16 indices",
    ),
]
