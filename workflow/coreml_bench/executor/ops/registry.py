"""The op table: MIL op type → torch implementation, and the helpers every family uses.

Each op follows its definition in coremltools' MIL op set (``coremltools.converters.mil.mil
.ops.defs``). An op function takes the op's resolved inputs by name (``"__op__"`` is the op
type) and the batch size, and returns a tensor (or a tuple for multi-output ops).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


class UnsupportedOpError(RuntimeError):
    """The program uses ops (or op modes) this executor does not implement, named."""


OpFunction = Callable[[dict[str, Any], int], Any]
OPS: dict[str, OpFunction] = {}


def register_op(*names: str) -> Callable[[OpFunction], OpFunction]:
    def register(function: OpFunction) -> OpFunction:
        for name in names:
            OPS[name] = function
        return function

    return register


def int_list(value: Any) -> list[int]:
    return [int(v) for v in np.asarray(value).reshape(-1)]


def scalar(value: Any) -> Any:
    array = np.asarray(value)
    return array.item() if array.size == 1 else array


def as_tensor(value: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    import torch

    if isinstance(value, torch.Tensor):
        return value
    array = np.asarray(value)
    tensor = torch.from_numpy(array.astype(np.float32) if array.dtype.kind == "f" else array)
    return tensor.to(like.device) if like is not None else tensor


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> int:
    effective = (kernel - 1) * dilation + 1
    return max((math.ceil(size / stride) - 1) * stride + effective - size, 0)


def spatial_padding(a: dict[str, Any], x: torch.Tensor, kernel: list[int]) -> list[int]:
    """MIL padding as [before_0, after_0, before_1, after_1, ...] over the spatial dims."""
    pad_type = str(scalar(a.get("pad_type", "valid")))
    n = len(kernel)
    if pad_type == "custom":
        return int_list(a["pad"])
    if pad_type == "valid":
        return [0] * (2 * n)
    strides = int_list(a.get("strides", [1] * n))
    dilations = int_list(a.get("dilations", [1] * n))
    pads = []
    for i in range(n):
        total = same_padding(x.shape[2 + i], kernel[i], strides[i], dilations[i])
        before = total // 2 if pad_type == "same" else total - total // 2
        pads += [before, total - before]
    return pads


def torch_pad(pads: list[int]) -> list[int]:
    """[b0, a0, b1, a1, ...] (first dim first) → torch's order (last dim first)."""
    pairs = [pads[i : i + 2] for i in range(0, len(pads), 2)]
    return [p for pair in reversed(pairs) for p in pair]
