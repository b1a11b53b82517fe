"""The op table: MIL op type → torch implementation, with what the compiler needs to know.

Each op follows its definition in coremltools' MIL op set (``coremltools.converters.mil.mil
.ops.defs``). An entry holds:

* ``run(**inputs)``: the op on torch tensors, its inputs by their MIL names. Computed inputs
  and stored weights arrive as tensors; axes, modes and scalars as Python literals (ints,
  floats, lists, strings) - or as int tensors where the program computes them at run time,
  so ``ints`` / ``number`` read either. Returns a tensor, or a tuple for multi-output ops.
* ``check(view)``: reasons (strings) the executor cannot run this op as configured; the
  compiler calls it for every op before anything runs, so a program is refused whole with
  every reason listed, or it runs.
* ``rows(view)``: why running N stacked batch-1 samples at once through this op could give
  another answer than running them one by one, or None when it provably cannot.
* ``folded_rows(view)``: the same question where an input or the output holds the batch
  folded into axis 0 (N rows of a (k, ...) tensor stacked as (N*k, ...), as a reshape from
  (1, C, ...) to (C, ...) leaves them); ops without it refuse such tensors. Only ops that
  move data within each axis-0 slice (reshape, transpose keeping axis 0) have one.
* ``fresh``: the result never shares memory with an input (fp16 rounding may then run in
  place); ``exact_fp16``: on fp16 inputs the result is already fp16 (select, move or compare
  values), so it is not rounded again.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


class UnsupportedOpError(RuntimeError):
    """The program uses ops (or op modes) this executor does not implement, named."""


@dataclass
class ArgInfo:
    """One input of an op as the compiler sees it (for ``check`` and ``rows``)."""

    kind: str  # "ref" (computed), "input" (a program input), "const" (stored), "value",
    # "state" (a state input: only read_state / coreml_update_state take one)
    value: Any = None  # the literal, for kind "value" (and small consts)
    shape: tuple[int | None, ...] | None = None
    dtype: str = ""


@dataclass
class OpView:
    """An op's inputs and outputs, given to ``check`` and ``rows``."""

    op: str
    name: str
    inputs: dict[str, ArgInfo | list[ArgInfo]]
    out_shapes: list[tuple[int | None, ...]]
    out_dtypes: list[str]

    def has(self, key: str) -> bool:
        return key in self.inputs

    def literal(self, key: str, default: Any = None) -> Any:
        arg = self.inputs.get(key)
        if arg is None or isinstance(arg, list) or arg.kind != "value":
            return default
        return arg.value

    def is_literal(self, key: str) -> bool:
        arg = self.inputs.get(key)
        return isinstance(arg, ArgInfo) and arg.kind == "value"

    def is_row(self, key: str) -> bool:
        """A tensor computed from the program input (it carries the batch rows)."""
        arg = self.inputs.get(key)
        return isinstance(arg, ArgInfo) and arg.kind in ("ref", "input")

    def shape(self, key: str) -> tuple[int | None, ...]:
        arg = self.inputs[key]
        assert isinstance(arg, ArgInfo)
        return arg.shape or ()

    def rank(self, key: str) -> int:
        return len(self.shape(key))


@dataclass(frozen=True)
class Computed:
    """A run-time input, as ``specialize`` sees it: its MIL dtype and declared shape."""

    dtype: str
    shape: tuple[int | None, ...] | None = None


@dataclass(frozen=True)
class BuildContext:
    """What ``specialize`` may use: the graph's device; ``fast`` (prepacked weights and fused
    activations - opaque oneDNN tensors, so off for export); ``activation``: the relu / clip
    that alone reads this op's result, as (name, scalars), which the op may apply itself."""

    device: str
    fast: bool
    activation: tuple[str, list[float]] | None = None


def _no_reasons(view: OpView) -> list[str]:
    return []


def rows_unsafe(view: OpView) -> str | None:
    return f"{view.op} {view.name!r} has no proof that it keeps batch rows apart"


@dataclass
class OpEntry:
    op: str
    run: Callable[..., Any]
    check: Callable[[OpView], list[str]] = _no_reasons
    rows: Callable[[OpView], str | None] = rows_unsafe
    folded_rows: Callable[[OpView], str | None] | None = None
    fresh: bool = True
    exact_fp16: bool = False
    # Unary ops that may overwrite their input when nothing else reads it (``relu_``).
    inplace: Callable[..., Any] | None = None
    # The op under row batching, where it must adapt (``reshape``'s leading 1 → N).
    batched: Callable[..., Any] | None = None
    # ``specialize(inputs, context)`` → (function, keys, fused) or None: the op with its
    # literals (and stored weights) bound once at graph build, called with just the tensors
    # named by ``keys`` (positionally); ``fused``: it applied ``context.activation`` itself.
    # Inputs computed at run time appear as ``Computed``. Saves the per-call argument
    # handling, and on CPU lets conv use prepacked weights (see linear.py).
    specialize: Callable[[dict[str, Any], BuildContext], Any] | None = None
    # ``post_op(step_inputs)`` → (name, scalars) or None: this op as the oneDNN post-op
    # (eltwise) computing the same values, which the op before it may apply itself
    # (``BuildContext.activation``); None where its arguments do not allow it.
    post_op: Callable[[dict[str, Any]], tuple[str, list[float]] | None] | None = None
    takes_op: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.takes_op = "op" in inspect.signature(self.run).parameters


OPS: dict[str, OpEntry] = {}


def register_op(
    *names: str,
    check: Callable[[OpView], list[str]] | None = None,
    rows: Callable[[OpView], str | None] | None = None,
    fresh: bool = True,
    exact_fp16: bool = False,
    inplace: Callable[..., Any] | None = None,
    batched: Callable[..., Any] | None = None,
    specialize: Callable[[dict[str, Any], BuildContext], Any] | None = None,
    post_op: Callable[[dict[str, Any]], tuple[str, list[float]] | None] | None = None,
    folded_rows: Callable[[OpView], str | None] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            if name in OPS:
                raise ValueError(f"op {name!r} is registered twice")
            OPS[name] = OpEntry(
                name,
                function,
                check or _no_reasons,
                rows or rows_unsafe,
                folded_rows,
                fresh,
                exact_fp16,
                inplace,
                batched,
                specialize,
                post_op,
            )
        return function

    return register


# --------------------------------------------------------------------------- row rules


def _axes_rule(key: str, default_all: bool) -> Callable[[OpView], str | None]:
    """Rows stay apart when the op's axes (normalised) never include the batch axis 0."""

    def rule(view: OpView) -> str | None:
        rank = view.rank("x") if view.has("x") else len(view.out_shapes[0])
        if not view.has(key) or view.literal(key) is None:
            if view.has(key) and not view.is_literal(key):
                return f"{view.op} {view.name!r} computes its {key} at run time"
            if default_all:
                return f"{view.op} {view.name!r} acts on every axis, the batch axis too"
            return None
        axes = [int(a) for a in np.asarray(view.literal(key)).reshape(-1)]
        if rank and any(a % rank == 0 for a in axes):
            return f"{view.op} {view.name!r} acts on the batch axis ({key}={axes})"
        return None

    return rule


def rows_on_axes(key: str = "axes", default_all: bool = True) -> Callable[[OpView], str | None]:
    return _axes_rule(key, default_all)


def rows_elementwise(view: OpView) -> str | None:
    """Elementwise: computed operands keep the batch axis at 0 (full rank); stored operands
    broadcast over it (lower rank, or a leading 1)."""
    out_rank = len(view.out_shapes[0]) if view.out_shapes else 0
    for key, arg in view.inputs.items():
        if isinstance(arg, list) or arg.kind == "value":
            continue
        shape = arg.shape or ()
        if arg.kind in ("ref", "input"):
            if len(shape) != out_rank or (shape and shape[0] != 1):
                return f"{view.op} {view.name!r}: operand {key!r} {shape} broadcasts across rows"
        elif len(shape) == out_rank and shape and shape[0] != 1:
            return f"{view.op} {view.name!r}: constant {key!r} of shape {shape} varies along rows"
    return None


def rows_per_sample(view: OpView) -> str | None:
    """Ops that treat axis 0 as the batch by definition (conv, pooling, resizing)."""
    return None


# --------------------------------------------------------------------------- value helpers


def ints(value: Any) -> list[int]:
    """A literal int / list, or an int tensor computed at run time, as a list of ints."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        out: list[int] = []
        for v in value:
            out += ints(v)
        return out
    return [int(value)]


def int_list(value: Any) -> list[int]:
    return ints(value)


def number(value: Any) -> Any:
    """A literal scalar, or a one-element tensor, as a Python number."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return number(value[0])
    return value


def scalar(value: Any) -> Any:
    array = np.asarray(value)
    return array.item() if array.size == 1 else array


def as_tensor(value: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    """A tensor for ``value``; literals take ``like``'s device (and float dtype, for floats)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, bool) or (isinstance(value, list) and _all_bool(value)):
        tensor = torch.tensor(value, dtype=torch.bool)
    elif isinstance(value, float) or (isinstance(value, list) and _any_float(value)):
        tensor = torch.tensor(value, dtype=torch.float32)
    elif isinstance(value, (int, list)):
        tensor = torch.tensor(value, dtype=torch.int32)
    else:
        array = np.asarray(value)
        tensor = torch.from_numpy(array.astype(np.float32) if array.dtype.kind == "f" else array)
    return tensor.to(like.device) if like is not None else tensor


def _all_bool(value: list[Any]) -> bool:
    flat = np.asarray(value, dtype=object).reshape(-1)
    return len(flat) > 0 and all(isinstance(v, (bool, np.bool_)) for v in flat)


def _any_float(value: list[Any]) -> bool:
    return any(isinstance(v, float) for v in np.asarray(value, dtype=object).reshape(-1))


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> int:
    effective = (kernel - 1) * dilation + 1
    return max((math.ceil(size / stride) - 1) * stride + effective - size, 0)


def spatial_padding(
    pad_type: str, pad: Any, x: torch.Tensor, kernel: list[int], strides: Any, dilations: Any
) -> list[int]:
    """MIL padding as [before_0, after_0, before_1, after_1, ...] over the spatial dims."""
    n = len(kernel)
    if pad_type == "custom":
        return ints(pad)
    if pad_type == "valid":
        return [0] * (2 * n)
    strides = ints(strides) if strides is not None else [1] * n
    dilations = ints(dilations) if dilations is not None else [1] * n
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


def one_of(
    key: str, allowed: tuple[Any, ...], default: Any = None
) -> Callable[[OpView], list[str]]:
    """A ``check``: the literal input ``key`` must be one of ``allowed``."""

    def check(view: OpView) -> list[str]:
        if view.has(key) and not view.is_literal(key):
            return [f"{view.op} {view.name!r}: {key} computed at run time is not supported"]
        value = view.literal(key, default)
        if value not in allowed:
            supported = ", ".join(map(repr, allowed))
            return [f"{view.op} {view.name!r}: {key}={value!r} is not supported ({supported})"]
        return []

    return check


def all_checks(*checks: Callable[[OpView], list[str]]) -> Callable[[OpView], list[str]]:
    def check(view: OpView) -> list[str]:
        return [reason for c in checks for reason in c(view)]

    return check
