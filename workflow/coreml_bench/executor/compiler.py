"""MIL program → ``Plan``: read once with coremltools, checked whole, weights decompressed.

Every op is checked before anything runs: an unknown op type, an op mode or attribute the
executor does not implement (inside control-flow blocks too) - all reasons are collected and
raised together (``UnsupportedOpError``), so a program is either refused up front or it runs.

State inputs (iOS18 ``state<tensor<...>>``) become ``Plan.states``; ``cond`` and
``while_loop`` become steps holding their blocks as nested step lists (``plan.Block``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..mlpackage.program import Materialiser, load_program
from .ops import OPS
from .ops.registry import ArgInfo, OpView, UnsupportedOpError
from .plan import Block, Plan, Step, TensorInfo

# Int/bool constants up to this size become literals (axes, shapes, perms); larger ones
# (gather indices, masks) are stored tensors.
LITERAL_LIMIT = 256
# Ops with nested blocks that the executor runs (``control_flow.py``).
CONTROL_FLOW = ("cond", "while_loop")
INPUT_DTYPES = ("fp16", "fp32", "int32", "bool", "int64", "fp64")
STATE_DTYPES = ("fp16", "fp32", "int32", "bool")


def _is_constant(op: Any) -> bool:
    return op is not None and (op.op_type == "const" or op.op_type.startswith("constexpr_"))


def _dtype(var: Any) -> str:
    from coremltools.converters.mil.mil import types

    dtype = var.dtype
    if types.is_tensor(getattr(var, "sym_type", None)):
        dtype = var.sym_type.get_primitive()
    try:
        return types.builtin_to_string(dtype)
    except Exception:  # state, list or dict types
        return str(getattr(dtype, "__name__", dtype))


def _shape(var: Any) -> list[int | None]:
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic

    shape = getattr(var, "shape", None) or ()
    return [None if is_symbolic(d) else int(d) for d in shape]


class _Builder:
    def __init__(self, package: Path | None, program: Any) -> None:
        self.package = package
        self.materialiser = Materialiser(package or Path("<program>"))
        self.constants: dict[str, Any] = {}
        self._const_keys: dict[int, str] = {}
        self.function = program.functions["main"]
        self.input_names = set(self.function.inputs)
        self.state_names: set[str] = set()
        # Inputs of nested blocks (a while_loop's loop variables): computed, though op-less,
        # and they may carry the initial value's sym_val - never read them as constants.
        self.block_inputs: set[int] = set()

    def argument(self, var: Any) -> tuple[dict[str, Any], ArgInfo]:
        """The plan argument for an op input, and what ``check``/``rows`` see of it."""
        import torch

        shape = tuple(_shape(var))
        dtype = _dtype(var)
        if var.op is None and var.name in self.state_names:
            return {"ref": var.name}, ArgInfo("state", shape=shape, dtype=dtype)
        if var.op is None and id(var) in self.block_inputs:
            return {"ref": var.name}, ArgInfo("ref", shape=shape, dtype=dtype)
        if var.name in self.input_names and var.op is None:
            return {"ref": var.name}, ArgInfo("input", shape=shape, dtype=dtype)
        if var.op is not None and not _is_constant(var.op):
            return {"ref": var.name}, ArgInfo("ref", shape=shape, dtype=dtype)
        value = var.val if var.val is not None else self.materialiser.value(var)
        if isinstance(value, str):
            return {"value": value}, ArgInfo("value", value, shape, dtype)
        array = np.asarray(value)
        if array.dtype.kind in "US":
            literal = array.tolist()
            return {"value": literal}, ArgInfo("value", literal, shape, dtype)
        if array.ndim == 0 or (array.dtype.kind in "iub" and array.size <= LITERAL_LIMIT):
            literal = array.tolist()
            return {"value": literal}, ArgInfo("value", literal, shape, dtype)
        key = self._const_keys.get(id(var))
        if key is None:
            key = f"c{len(self.constants)}"
            self._const_keys[id(var)] = key
            if array.dtype.kind == "f":
                tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
            elif array.dtype.kind == "b":
                tensor = torch.from_numpy(np.ascontiguousarray(array))
            else:
                tensor = torch.from_numpy(np.ascontiguousarray(array).astype(np.int32))
            self.constants[key] = tensor
        return {"const": key}, ArgInfo("const", None, shape, dtype)


def compile_program(
    program: Any,
    package: Path | None = None,
    spec: Any = None,
    source: dict[str, Any] | None = None,
) -> Plan:
    """The plan of a MIL program's ``main`` function, or ``UnsupportedOpError`` with every
    reason it cannot run. ``spec`` (the package's model spec) adds descriptions and
    flexible-shape ranges to the inputs and outputs."""
    builder = _Builder(package, program)
    function = builder.function
    reasons: list[str] = []
    where = f"{package}: " if package else ""

    inputs: list[TensorInfo] = []
    states: list[TensorInfo] = []
    for name, var in function.inputs.items():
        if _is_state(var):
            states.append(_state_info(name, var, reasons))
            builder.state_names.add(name)
            continue
        dtype = _dtype(var)
        if dtype not in INPUT_DTYPES:
            reasons.append(f"input {name!r} of type {dtype} (non-tensor inputs)")
        inputs.append(TensorInfo(name=name, dtype=dtype, shape=_shape(var)))
    steps, row_hazard, folded = _compile_operations(builder, function.operations, reasons)
    outputs = []
    for var in function.outputs:
        if var.name in folded:
            row_hazard = row_hazard or f"output {var.name!r} holds the batch folded into axis 0"
        if _is_constant(var.op):
            # A program may return a stored (even compressed) tensor: an identity step on it.
            steps.append(_identity_step(builder, var))
            row_hazard = row_hazard or f"output {var.name!r} is a constant, not per row"
        outputs.append(TensorInfo(name=var.name, dtype=_dtype(var), shape=_shape(var)))
    if reasons:
        listed = "\n  - ".join(dict.fromkeys(reasons))
        raise UnsupportedOpError(
            f"{where}the mil-torch executor cannot run this program; nothing was run:\n  - {listed}"
        )
    if spec is not None:
        _describe(inputs, spec.description.input)
        _describe(outputs, spec.description.output)
    for info in inputs:
        if not info.shape or info.shape[0] != 1:
            row_hazard = row_hazard or f"input {info.name!r} has shape {info.shape}, not (1, ...)"
    if states:
        # One state serves the whole call: stacked samples would share (and race on) it.
        names = ", ".join(repr(s.name) for s in states)
        row_hazard = f"the program reads and writes state ({names}), shared by every sample"
    return Plan(
        inputs=inputs,
        outputs=outputs,
        steps=steps,
        source=dict(source or {}),
        row_hazard=row_hazard,
        constants=builder.constants,
        states=states,
    )


def _is_state(var: Any) -> bool:
    from coremltools.converters.mil.mil import types

    return types.is_state(getattr(var, "sym_type", None))


def _state_info(name: str, var: Any, reasons: list[str]) -> TensorInfo:
    """A state input as the tensor it wraps; only fixed shapes of tensor dtypes run."""
    from coremltools.converters.mil.mil import types

    wrapped = var.sym_type.wrapped_type()
    if not types.is_tensor(wrapped):
        reasons.append(f"state {name!r} wraps {wrapped.__type_info__()}, not a tensor")
        return TensorInfo(name=name, dtype="?", shape=[])
    dtype = types.builtin_to_string(wrapped.get_primitive())
    shape = _shape(var)
    if dtype not in STATE_DTYPES:
        reasons.append(f"state {name!r} of dtype {dtype} is not supported ({STATE_DTYPES})")
    if any(d is None for d in shape):
        reasons.append(f"state {name!r} has a flexible shape {tuple(shape)}")
    return TensorInfo(name=name, dtype=dtype, shape=shape)


def _identity_step(builder: _Builder, var: Any) -> Step:
    argument, info = builder.argument(var)
    return Step(
        "identity", f"{var.name}__output", {"x": argument}, [var.name],
        [info.dtype], [list(info.shape or ())], [False],
    )  # fmt: skip


def _compile_operations(
    builder: _Builder, operations: Any, reasons: list[str]
) -> tuple[list[Step], str | None, set[str]]:
    """The steps of a block's ops (the function's, or a nested block's), the first row
    hazard among them and the results holding a folded batch (``_row_hazard``); every
    reason an op cannot run is appended to ``reasons``."""
    steps: list[Step] = []
    row_hazard: str | None = None
    folded: set[str] = set()  # results holding the batch folded into axis 0 (_row_hazard)
    for op in operations:
        if _is_constant(op):
            continue
        if op.op_type in CONTROL_FLOW:
            steps.append(_control_flow_step(builder, op, reasons))
            # The branch taken (or the trip count) is one for the whole stacked batch.
            row_hazard = row_hazard or f"{op.op_type} {op.name!r}: control flow decides per call"
            continue
        if op.blocks:
            reasons.append(f"{op.op_type} {op.name!r}: an op with nested blocks (not supported)")
            continue
        entry = OPS.get(op.op_type)
        if entry is None:
            reasons.append(f"op type {op.op_type} ({op.name!r}) is not implemented")
            continue
        arguments: dict[str, Any] = {}
        infos: dict[str, Any] = {}
        for key, var in op.inputs.items():
            if isinstance(var, (list, tuple)):
                pairs = [builder.argument(v) for v in var]
                arguments[key] = {"list": [p[0] for p in pairs]}
                infos[key] = [p[1] for p in pairs]
            else:
                arguments[key], infos[key] = builder.argument(var)
        view = OpView(
            op=op.op_type,
            name=op.name,
            inputs=infos,
            out_shapes=[tuple(_shape(o)) for o in op.outputs],
            out_dtypes=[_dtype(o) for o in op.outputs],
        )
        reasons += entry.check(view)
        step = Step(
            op=op.op_type,
            name=op.name,
            inputs=arguments,
            outputs=[o.name for o in op.outputs],
            dtypes=view.out_dtypes,
            shapes=[list(s) for s in view.out_shapes],
            round=[d == "fp16" and not entry.exact_fp16 for d in view.out_dtypes],
        )
        steps.append(step)
        if row_hazard is None:
            row_hazard = _row_hazard(entry, view, step, folded)
    return steps, row_hazard, folded


def _row_hazard(entry: Any, view: OpView, step: Step, folded: set[str]) -> str | None:
    """Why this op could mix stacked rows, or None. ``folded`` collects the results whose
    axis 0 holds the batch folded with another axis (N rows of (k, ...) as (N*k, ...)):
    only ops with a ``folded_rows`` rule read or make them."""
    reads_folded = [r for r in step.refs() if r in folded]
    makes_folded = any(not shape or shape[0] != 1 for shape in view.out_shapes)
    per_row = bool(step.refs())  # an op on stored tensors alone is folded at build time
    if reads_folded or (per_row and makes_folded and entry.folded_rows is not None):
        if entry.folded_rows is None:
            return (
                f"{view.op} {view.name!r} reads {reads_folded[0]!r}, whose axis 0 holds the "
                "batch folded with another axis"
            )
        hazard = entry.folded_rows(view)
        if hazard is None and makes_folded:
            folded.update(step.outputs)
        return hazard
    return entry.rows(view) or _leading_axis_hazard(view)


def _control_flow_step(builder: _Builder, op: Any, reasons: list[str]) -> Step:
    """``cond`` (``pred``; blocks true, false) or ``while_loop`` (``loop_vars``; blocks cond,
    body) as a step holding each block's steps. A block reads its own inputs (a loop's
    variables) and ``captured`` results of the blocks around it (and states), by name."""
    arguments: dict[str, Any] = {}
    if op.op_type == "cond":
        arguments["pred"], info = builder.argument(op.pred)
        if info.dtype != "bool":
            reasons.append(f"cond {op.name!r}: pred of dtype {info.dtype}, not bool")
    else:
        arguments["loop_vars"] = {"list": [builder.argument(v)[0] for v in op.loop_vars]}
    blocks = []
    for block in op.blocks:
        builder.block_inputs.update(id(v) for v in block.inputs)
        steps, _, _ = _compile_operations(builder, block.operations, reasons)
        for var in dict.fromkeys(block.outputs):
            if _is_constant(var.op):
                steps.append(_identity_step(builder, var))  # a block may return a constant
        local = {v.name for v in block.inputs} | {o for s in steps for o in s.outputs}
        captured = [
            name for name in dict.fromkeys(
                [*(r for s in steps for r in s.refs()), *(v.name for v in block.outputs)]
            ) if name not in local
        ]  # fmt: skip
        blocks.append(
            Block(
                inputs=[v.name for v in block.inputs],
                input_dtypes=[_dtype(v) for v in block.inputs],
                input_shapes=[_shape(v) for v in block.inputs],
                captured=captured,
                steps=steps,
                outputs=[v.name for v in block.outputs],
            )
        )
    return Step(
        op=op.op_type,
        name=op.name,
        inputs=arguments,
        outputs=[o.name for o in op.outputs],
        dtypes=[_dtype(o) for o in op.outputs],
        shapes=[_shape(o) for o in op.outputs],
        round=[False for _ in op.outputs],  # block results are rounded where computed
        blocks=blocks,
    )


def _leading_axis_hazard(view: OpView) -> str | None:
    for shape in view.out_shapes:
        if not shape or shape[0] != 1:
            return f"{view.op} {view.name!r} gives shape {tuple(shape)}: the batch axis is folded"
    return None


def _describe(infos: list[TensorInfo], features: Any) -> None:
    """Descriptions and flexible shapes from the package's own feature descriptions."""
    by_name = {f.name: f for f in features}
    for info in infos:
        feature = by_name.get(info.name)
        if feature is None:
            continue
        info.description = feature.shortDescription
        kind = feature.type.WhichOneof("Type")
        if kind != "multiArrayType":
            continue
        array = feature.type.multiArrayType
        which = array.WhichOneof("ShapeFlexibility")
        if which == "shapeRange":
            info.ranges = [
                [int(r.lowerBound), int(r.upperBound)] for r in array.shapeRange.sizeRanges
            ]
        elif which == "enumeratedShapes":
            info.enumerated = [[int(d) for d in s.shape] for s in array.enumeratedShapes.shapes]


def compile_package(package: Path) -> Plan:
    """The plan of a package's ML program (needs coremltools; Linux-safe)."""
    from ..mlpackage.digest import package_content_digest
    from ..mlpackage.files import load_spec

    package = Path(package)
    program = load_program(package)
    source = {"package": str(package), "package_content_sha256": package_content_digest(package)}
    return compile_program(program, package, spec=load_spec(package), source=source)
