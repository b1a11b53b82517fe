"""Elementwise ops: arithmetic, comparisons, logic, unary maths, activations, casts.

Definitions: ``elementwise_binary.py``, ``elementwise_unary.py``, ``activation.py`` and
``control_flow.py`` (``select``) of the MIL op set (iOS15, with the iOS17 revisions).

Integer semantics follow MIL's value inference: an op whose result type is int32 computes
the real result and truncates it toward zero (numpy ``astype``), so ``real_div`` of ints
is a truncating division and ``exp2`` of ints is ``trunc(2 ** x)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import (
    BuildContext,
    Computed,
    OpView,
    as_tensor,
    number,
    one_of,
    register_op,
    rows_elementwise,
    rows_on_axes,
)

if TYPE_CHECKING:
    import torch


# --------------------------------------------------------------------------- binary


def _operands(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    like = x if isinstance(x, torch.Tensor) else y
    x, y = as_tensor(x, like), as_tensor(y, like)
    if x.dtype != y.dtype and x.is_floating_point() != y.is_floating_point():
        x, y = x.float(), y.float()
    return x, y


def _binary_functions() -> dict[str, Any]:
    import torch

    def real_div(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # int32 / int32 is int32 in MIL: the quotient truncated toward zero.
        if x.is_floating_point():
            return torch.true_divide(x, y)
        return torch.div(x, y, rounding_mode="trunc")

    def floor_div(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.div(x, y, rounding_mode="floor")

    return {
        "add": torch.add,
        "sub": torch.sub,
        "mul": torch.mul,
        "real_div": real_div,
        "maximum": torch.maximum,
        "minimum": torch.minimum,
        "pow": torch.pow,
        "floor_div": floor_div,
        # MIL mod is numpy's remainder: x - floor(x / y) * y, the sign follows y.
        "mod": torch.remainder,
        "equal": torch.eq,
        "not_equal": torch.ne,
        "less": torch.lt,
        "less_equal": torch.le,
        "greater": torch.gt,
        "greater_equal": torch.ge,
        "logical_and": torch.logical_and,
        "logical_or": torch.logical_or,
        "logical_xor": torch.logical_xor,
    }


ARITHMETIC = ("add", "sub", "mul", "real_div", "pow", "floor_div", "mod")
# Selections and comparisons: fp16 in, fp16 (or bool) out, nothing to round.
SELECTING = (
    "maximum", "minimum", "equal", "not_equal", "less", "less_equal", "greater",
    "greater_equal", "logical_and", "logical_or", "logical_xor",
)  # fmt: skip
BINARY = ARITHMETIC + SELECTING
_BINARY: dict[str, Any] = {}


_FLOAT = ("fp16", "fp32")
_DIRECT = {"add": "add", "sub": "sub", "mul": "mul", "real_div": "true_divide"}


def _binary_specialized(op: str) -> Any:
    """add/sub/mul/real_div of two float tensors (computed or stored): the torch function
    itself, without the per-call operand handling."""

    def specialize(inputs: dict[str, Any], context: BuildContext) -> Any:
        import torch

        x, y = inputs["x"], inputs["y"]
        for value in (x, y):
            if isinstance(value, Computed):
                if value.dtype not in _FLOAT:
                    return None
            elif not (isinstance(value, torch.Tensor) and value.is_floating_point()):
                return None
        return getattr(torch, _DIRECT[op]), ("x", "y"), False

    return specialize


@register_op(*SELECTING, rows=rows_elementwise, exact_fp16=True)
@register_op(*(a for a in ARITHMETIC if a not in _DIRECT), rows=rows_elementwise)
def binary(x: Any, y: Any, op: str) -> torch.Tensor:
    if not _BINARY:
        _BINARY.update(_binary_functions())
    x, y = _operands(x, y)
    return _BINARY[op](x, y)


def binary_(x: torch.Tensor, y: Any, op: str) -> torch.Tensor:
    """add/sub/mul/real_div written into x, for a fresh x nothing else reads and whose shape
    is the result's (the graph decides): the kernel of ``torch.add(x, y)`` etc., so the
    same values, without allocating the result (a residual add at batch 8 is tens of MB)."""
    import torch

    if isinstance(y, torch.Tensor) and x.dtype == torch.float32 and y.dtype == x.dtype:
        return getattr(x, _DIRECT[op] + "_")(y)
    return binary(x, y, op)


for _name in _DIRECT:
    register_op(
        _name, rows=rows_elementwise, specialize=_binary_specialized(_name), inplace=binary_
    )(binary)


# --------------------------------------------------------------------------- unary


def _sign(x: torch.Tensor) -> torch.Tensor:
    import torch

    # numpy's sign keeps NaN; torch.sign maps it to 0.
    if not x.is_floating_point():
        return torch.sign(x)
    return torch.where(x.isnan(), x, torch.sign(x))


def _exp2(x: torch.Tensor) -> torch.Tensor:
    import torch

    if x.is_floating_point():
        return torch.exp2(x)
    # int32 in, int32 out: 2 ** x truncated (negative exponents give 0).
    return torch.exp2(x.double()).trunc_().to(torch.int32)


def _unary_functions() -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    return {
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "silu": F.silu,
        "tanh": torch.tanh,
        "sqrt": torch.sqrt,
        "square": torch.square,
        "exp": torch.exp,
        "exp2": _exp2,
        "abs": torch.abs,
        "sign": _sign,
        "ceil": torch.ceil,
        "floor": torch.floor,
        "round": torch.round,  # half to even, as MIL's numpy reference
        "sin": torch.sin,
        "cos": torch.cos,
        "tan": torch.tan,
        "asin": torch.asin,
        "acos": torch.acos,
        "atan": torch.atan,
        "sinh": torch.sinh,
        "cosh": torch.cosh,
        "atanh": torch.atanh,
        "erf": torch.erf,
        "logical_not": torch.logical_not,
        "softsign": F.softsign,
        "softplus": F.softplus,
    }


UNARY = (
    "relu", "sigmoid", "silu", "tanh", "sqrt", "square", "exp", "exp2", "abs", "sign",
    "ceil", "floor", "round", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
    "atanh", "erf", "logical_not", "softsign", "softplus",
)  # fmt: skip
_UNARY: dict[str, Any] = {}
# These select or keep input values: on fp16 inputs the result is fp16 already.
_EXACT_UNARY = ("relu", "abs", "sign", "ceil", "floor", "round", "logical_not")
# Float ops with an in-place form running the same kernel (``_unary_``): a fresh input
# nothing else reads is overwritten instead of a new buffer allocated (tens of MB at batch 8).
_INPLACE_UNARY = ("relu", "sigmoid", "tanh", "silu", "sqrt", "square", "exp", "erf")
# MIL types these for int32 too (``elementwise_unary_with_int``); the rest are float-only.
_INT_UNARY = ("abs", "sign", "square", "exp2", "logical_not")


def _unary(x: torch.Tensor, op: str) -> torch.Tensor:
    if not _UNARY:
        _UNARY.update(_unary_functions())
    if not x.is_floating_point() and op not in _INT_UNARY:
        x = x.float()
    return _UNARY[op](x)


def _unary_(x: torch.Tensor, op: str) -> torch.Tensor:
    """In place, for a fresh float input nothing else reads (the graph decides): same
    function, same dtype, so the values are those of ``_unary``."""
    if op == "silu":
        import torch.nn.functional as F

        return F.silu(x, inplace=True)
    return getattr(x, f"{op}_")()  # relu_, sigmoid_, tanh_, sqrt_, square_, exp_, erf_


def _relu_post_op(inputs: dict[str, Any]) -> tuple[str, list[float]]:
    return ("relu", [])


for _name in UNARY:
    register_op(
        _name,
        rows=rows_elementwise,
        exact_fp16=_name in _EXACT_UNARY,
        inplace=_unary_ if _name in _INPLACE_UNARY else None,
        post_op=_relu_post_op if _name == "relu" else None,
    )(_unary)


# MIL's defaults are of x's type: fp16(1e-12) and fp16(1e-45) are 0, fp16(1e-4) is
# 1.0001659e-4. The builder always fills them in, so these only serve a program whose
# op lacks the input; they are the fp32 ones.
_EPSILON = {"rsqrt": 1e-12, "inverse": 1e-4, "log": 1e-45}


@register_op("rsqrt", "inverse", "log", rows=rows_elementwise)
def with_epsilon(x: torch.Tensor, op: str, epsilon: Any = None) -> torch.Tensor:
    """MIL adds epsilon inside: rsqrt(x + ε), 1 / (x + ε), log(x + ε)."""
    import torch

    eps = _EPSILON[op] if epsilon is None else float(number(epsilon))
    x = x.float() if not x.is_floating_point() else x
    if op == "rsqrt":
        return torch.rsqrt(x + eps)
    if op == "inverse":
        return torch.reciprocal(x + eps)
    return torch.log(x + eps)


# --------------------------------------------------------------------------- clamps


def clip_(x: torch.Tensor, alpha: Any, beta: Any) -> torch.Tensor:
    return x.clamp_(float(number(alpha)), float(number(beta)))


def _clip_post_op(inputs: dict[str, Any]) -> tuple[str, list[float]] | None:
    """oneDNN's hardtanh clamps to [alpha, beta] as ``clip`` does, for literal bounds."""
    alpha, beta = inputs.get("alpha", {}), inputs.get("beta", {})
    if "value" in alpha and "value" in beta:
        return ("hardtanh", [float(alpha["value"]), float(beta["value"])])
    return None


# Bounds are fp16 values (the op's own type), so clamping fp16 inputs stays on the grid.
@register_op("clip", rows=rows_elementwise, exact_fp16=True, inplace=clip_, post_op=_clip_post_op)
def clip(x: torch.Tensor, alpha: Any, beta: Any) -> torch.Tensor:
    """min(max(x, alpha), beta), alpha and beta scalars (MIL ``clip``)."""
    return x.clamp(float(number(alpha)), float(number(beta)))


def _bound(x: torch.Tensor, alpha: Any) -> Any:
    value = number(alpha)
    return float(value) if x.is_floating_point() else int(value)


def threshold_(x: torch.Tensor, alpha: Any) -> torch.Tensor:
    return x.clamp_(min=_bound(x, alpha))


@register_op("threshold", rows=rows_elementwise, exact_fp16=True, inplace=threshold_)
def threshold(x: torch.Tensor, alpha: Any) -> torch.Tensor:
    """max(x, alpha): alpha is a lower bound (fp16, fp32 or int32, as x)."""
    return x.clamp(min=_bound(x, alpha))


def relu6_(x: torch.Tensor) -> torch.Tensor:
    return x.clamp_(0.0, 6.0)


def _relu6_post_op(inputs: dict[str, Any]) -> tuple[str, list[float]]:
    return ("hardtanh", [0.0, 6.0])


@register_op(
    "relu6", rows=rows_elementwise, exact_fp16=True, inplace=relu6_, post_op=_relu6_post_op
)
def relu6(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0.0, 6.0)


# --------------------------------------------------------------------------- activations


@register_op("leaky_relu", rows=rows_elementwise)
def leaky_relu(x: torch.Tensor, alpha: Any = 0.01) -> torch.Tensor:
    import torch.nn.functional as F

    return F.leaky_relu(x, float(number(alpha)))


@register_op("elu", rows=rows_elementwise)
def elu(x: torch.Tensor, alpha: Any = 1.0) -> torch.Tensor:
    import torch.nn.functional as F

    return F.elu(x, float(number(alpha)))


def _per_channel(value: Any, x: torch.Tensor) -> torch.Tensor:
    """A [C] parameter broadcast along axis 1 of x (MIL's channel axis)."""
    tensor = as_tensor(value, x).float()
    return tensor.reshape(-1, *([1] * (x.ndim - 2))) if tensor.ndim else tensor


@register_op("prelu", rows=rows_elementwise)
def prelu(x: torch.Tensor, alpha: Any) -> torch.Tensor:
    """x if x > 0 else alpha[c] * x, alpha per channel (axis 1 of a rank 3-5 input)."""
    import torch

    return torch.where(x > 0, x, x * _per_channel(alpha, x))


@register_op("softplus_parametric", rows=rows_elementwise)
def softplus_parametric(x: torch.Tensor, alpha: Any, beta: Any) -> torch.Tensor:
    """alpha[c] * log(1 + exp(beta[c] * x)), per channel (axis 1)."""
    import torch.nn.functional as F

    return _per_channel(alpha, x) * F.softplus(_per_channel(beta, x) * x)


def _clamped_relu_check(view: OpView) -> list[str]:
    # MIL documents min(beta, x) / min(beta, alpha * x), but its value inference computes
    # min(max(x, 0), beta) + min(min(x, 0) * alpha, beta): they agree only for beta >= 0.
    if not view.is_literal("beta"):
        # A stored (non-scalar) beta: its sign cannot be read here, so it cannot be vouched for.
        return [f"clamped_relu {view.name!r}: beta that is not a scalar literal is not supported"]
    beta = view.literal("beta")
    if float(number(beta)) < 0:
        return [
            f"clamped_relu {view.name!r}: beta={beta} < 0 is ambiguous in MIL "
            "(its documented formula and its value inference disagree)"
        ]
    return []


@register_op("clamped_relu", rows=rows_elementwise, check=_clamped_relu_check)
def clamped_relu(x: torch.Tensor, alpha: Any, beta: Any) -> torch.Tensor:
    """min(beta, x) if x >= 0 else min(beta, alpha * x)."""
    import torch

    a, b = float(number(alpha)), float(number(beta))
    return torch.where(x >= 0, x, a * x).clamp_(max=b)


@register_op("scaled_tanh", rows=rows_elementwise)
def scaled_tanh(x: torch.Tensor, alpha: Any = 1.0, beta: Any = 1.0) -> torch.Tensor:
    """alpha * tanh(beta * x)."""
    return (x * float(number(beta))).tanh_().mul_(float(number(alpha)))


@register_op("linear_activation", rows=rows_elementwise)
def linear_activation(x: torch.Tensor, alpha: Any, beta: Any = 0.0) -> torch.Tensor:
    """alpha * x + beta."""
    return x * float(number(alpha)) + float(number(beta))


def _sigmoid_hard_specialized(inputs: dict[str, Any], context: BuildContext) -> Any:
    """Literal alpha and beta on CPU: beta held as the 0-d tensor ``sigmoid_hard`` makes on
    each call (this op runs twice in every hard-swish block), so the same kernels run."""
    import torch

    x, alpha, beta = inputs["x"], inputs.get("alpha", 0.2), inputs.get("beta", 0.5)
    if not isinstance(x, Computed) or x.dtype not in ("fp16", "fp32") or context.device != "cpu":
        return None
    if not all(isinstance(v, (int, float)) for v in (alpha, beta)):
        return None
    scale, offset = float(alpha), torch.tensor(float(beta), dtype=torch.float32)

    def sigmoid_hard_bound(x: torch.Tensor) -> torch.Tensor:
        return _sigmoid_hard(x, offset, scale)

    return sigmoid_hard_bound, ("x",), False


@register_op("sigmoid_hard", rows=rows_elementwise, specialize=_sigmoid_hard_specialized)
def sigmoid_hard(x: torch.Tensor, alpha: Any = 0.2, beta: Any = 0.5) -> torch.Tensor:
    """min(max(alpha * x + beta, 0), 1)."""
    import torch

    beta_t = torch.tensor(float(number(beta)), dtype=x.dtype, device=x.device)
    return _sigmoid_hard(x, beta_t, float(number(alpha)))


def _sigmoid_hard(x: torch.Tensor, beta: torch.Tensor, alpha: float) -> torch.Tensor:
    # beta + alpha·x in one kernel, then clamped in place: this op runs in every hard-swish.
    import torch

    return torch.add(beta, x, alpha=alpha).clamp_(0.0, 1.0)


def _threshold_below(x: torch.Tensor, alpha: Any) -> float | None:
    """The float32 just below alpha, so that x >= alpha is x > it: one fused kernel
    (F.threshold) instead of a comparison and a select; None where there is none."""
    import numpy as np
    import torch

    if x.dtype != torch.float32:
        return None
    threshold = np.float32(float(number(alpha)))
    below = np.nextafter(threshold, np.float32(-np.inf))
    return float(below) if below < threshold else None


def thresholded_relu_(x: torch.Tensor, alpha: Any = 1.0) -> torch.Tensor:
    """In place, for a fresh input nothing else reads: the values of ``thresholded_relu``
    (a conv's result, in every hard-swish block)."""
    import torch.nn.functional as F

    below = _threshold_below(x, alpha)
    if below is not None:
        return F.threshold_(x, below, 0.0)
    return x.masked_fill_(~(x >= float(number(alpha))), 0)


@register_op("thresholded_relu", rows=rows_elementwise, exact_fp16=True, inplace=thresholded_relu_)
def thresholded_relu(x: torch.Tensor, alpha: Any = 1.0) -> torch.Tensor:
    """x if x >= alpha else 0 (MIL: ``>=``; torch's F.threshold uses ``>``)."""
    import torch
    import torch.nn.functional as F

    below = _threshold_below(x, alpha)
    if below is not None:
        return F.threshold(x, below, 0.0)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    return torch.where(x >= float(number(alpha)), x, zero)


_GELU_MODES = ("EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION")


@register_op("gelu", rows=rows_elementwise, check=one_of("mode", _GELU_MODES, "EXACT"))
def gelu(x: torch.Tensor, mode: str = "EXACT") -> torch.Tensor:
    import torch
    import torch.nn.functional as F

    if mode == "SIGMOID_APPROXIMATION":
        return x * torch.sigmoid(1.702 * x)
    return F.gelu(x, approximate="tanh" if mode == "TANH_APPROXIMATION" else "none")


@register_op("softmax", rows=rows_on_axes("axis", default_all=False))
def softmax(x: torch.Tensor, axis: Any = -1) -> torch.Tensor:
    return x.softmax(dim=int(number(axis)))


# --------------------------------------------------------------------------- select, cast


@register_op("select", rows=rows_elementwise, exact_fp16=True)
def select(cond: Any, a: Any, b: Any) -> torch.Tensor:
    """a where cond else b, broadcasting all three (a and b's values, so fp16 stays fp16)."""
    import torch

    like = next(v for v in (cond, a, b) if isinstance(v, torch.Tensor))
    a, b = _operands(a, b)
    return torch.where(as_tensor(cond, like).bool(), a, b)


# MIL's cast targets: iOS15 fp16, fp32, int32, bool; iOS17 adds int8, uint8, int16, uint16.
_CAST = ("fp16", "fp32", "int8", "uint8", "int16", "uint16", "int32", "bool")


@register_op("cast", rows=rows_elementwise, fresh=False, check=one_of("dtype", _CAST))
def cast(x: Any, dtype: str) -> torch.Tensor:
    """To ``dtype`` as numpy's ``astype`` (MIL's reference): fp16 results are rounded after
    the op; floats to ints truncate toward 0; narrow ints wrap around (two's complement).
    uint16 values are held in int32 (torch has no general uint16)."""
    import torch

    x = as_tensor(x)
    if dtype.startswith("fp"):
        return x.float()
    if dtype == "bool":
        return x != 0
    if dtype == "int32":
        if x.is_floating_point():
            return x.trunc().to(torch.int32)
        return x if x.dtype == torch.int32 else x.to(torch.int32)
    target = {"int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16}.get(dtype)
    if x.dtype == target:
        return x
    # Narrow targets: truncate to a wide int, then keep the low bits (numpy's wrap-around).
    wide = x.trunc().to(torch.int64) if x.is_floating_point() else x.to(torch.int64)
    if target is None:  # uint16
        return torch.bitwise_and(wide, 0xFFFF).to(torch.int32)
    return wide.to(target)
