"""Elementwise ops: arithmetic, activations, softmax and casts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import as_tensor, register_op, scalar

if TYPE_CHECKING:
    import torch


@register_op("add", "sub", "mul", "real_div", "maximum", "minimum", "pow")
def _binary(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch

    x, y = a["x"], a["y"]
    like = x if isinstance(x, torch.Tensor) else y
    x, y = as_tensor(x, like), as_tensor(y, like)
    return {
        "add": torch.add,
        "sub": torch.sub,
        "mul": torch.mul,
        "real_div": torch.div,
        "maximum": torch.maximum,
        "minimum": torch.minimum,
        "pow": torch.pow,
    }[a["__op__"]](x, y)


@register_op("relu", "sigmoid", "silu", "tanh", "sqrt", "square", "exp", "rsqrt", "abs")
def _unary(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch

    x = a["x"]
    epsilon = float(scalar(a.get("epsilon", 1e-12)))
    return {
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "silu": torch.nn.functional.silu,
        "tanh": torch.tanh,
        "sqrt": torch.sqrt,
        "square": torch.square,
        "exp": torch.exp,
        "rsqrt": lambda t: torch.rsqrt(t + epsilon),
        "abs": torch.abs,
    }[a["__op__"]](x)


@register_op("clip")
def _clip(a: dict[str, Any], batch: int) -> torch.Tensor:
    return a["x"].clamp(float(scalar(a["alpha"])), float(scalar(a["beta"])))


@register_op("sigmoid_hard")
def _sigmoid_hard(a: dict[str, Any], batch: int) -> torch.Tensor:
    alpha, beta = float(scalar(a.get("alpha", 0.2))), float(scalar(a.get("beta", 0.5)))
    # One new tensor, then in place: this op runs on every hard-swish activation.
    return a["x"].mul(alpha).add_(beta).clamp_(0.0, 1.0)


@register_op("thresholded_relu")
def _thresholded_relu(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch.nn.functional as F

    # y = x where x > alpha, else 0: exactly F.threshold, one fused kernel.
    return F.threshold(a["x"], float(scalar(a.get("alpha", 1.0))), 0.0)


@register_op("gelu")
def _gelu(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch

    mode = str(scalar(a.get("mode", "EXACT")))
    approximate = "tanh" if mode == "TANH_APPROXIMATION" else "none"
    if mode == "SIGMOID_APPROXIMATION":
        return a["x"] * torch.sigmoid(1.702 * a["x"])
    return torch.nn.functional.gelu(a["x"], approximate=approximate)


@register_op("softmax")
def _softmax(a: dict[str, Any], batch: int) -> torch.Tensor:
    return a["x"].softmax(dim=int(scalar(a.get("axis", -1))))


@register_op("cast")
def _cast(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch

    dtype = str(scalar(a["dtype"]))
    x = as_tensor(a["x"])
    if dtype.startswith("fp"):
        # fp16 outputs are rounded after the op (see ``_round_fp16``); keep float32 here.
        return x.float()
    if dtype == "bool":
        return x != 0
    return x.round().to(torch.int64) if x.is_floating_point() else x.to(torch.int64)
