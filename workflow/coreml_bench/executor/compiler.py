"""MIL program → ``Plan``: read once with coremltools, checked whole, weights decompressed.

Every op is checked before anything runs: an unknown op type, an op mode or attribute the
executor does not implement, control flow or state - all reasons are collected and raised
together (``UnsupportedOpError``), so a program is either refused up front or it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..mlpackage.program import Materialiser, load_program
from .ops import OPS
from .ops.registry import ArgInfo, OpView, UnsupportedOpError
from .plan import Plan, Step, TensorInfo

# Int/bool constants up to this size become literals (axes, shapes, perms); larger ones
# (gather indices, masks) are stored tensors.
LITERAL_LIMIT = 256


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

    def argument(self, var: Any) -> tuple[dict[str, Any], ArgInfo]:
        """The plan argument for an op input, and what ``check``/``rows`` see of it."""
        import torch

        shape = tuple(_shape(var))
        dtype = _dtype(var)
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
    steps: list[Step] = []
    row_hazard: str | None = None
    where = f"{package}: " if package else ""

    inputs = []
    for name, var in function.inputs.items():
        dtype = _dtype(var)
        if dtype not in ("fp16", "fp32", "int32", "bool", "int64", "fp64"):
            reasons.append(f"input {name!r} of type {dtype} (state or non-tensor inputs)")
        inputs.append(TensorInfo(name=name, dtype=dtype, shape=_shape(var)))
    for op in function.operations:
        if _is_constant(op):
            continue
        if op.blocks:
            reasons.append(f"{op.op_type} {op.name!r}: control flow is not supported")
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
        if row_hazard is None:
            row_hazard = entry.rows(view) or _leading_axis_hazard(view)
        steps.append(
            Step(
                op=op.op_type,
                name=op.name,
                inputs=arguments,
                outputs=[o.name for o in op.outputs],
                dtypes=view.out_dtypes,
                shapes=[list(s) for s in view.out_shapes],
                round=[d == "fp16" and not entry.exact_fp16 for d in view.out_dtypes],
            )
        )
    outputs = []
    for var in function.outputs:
        if _is_constant(var.op):
            # A program may return a stored (even compressed) tensor: an identity step on it.
            argument, info = builder.argument(var)
            steps.append(
                Step("identity", f"{var.name}__output", {"x": argument}, [var.name],
                     [info.dtype], [list(info.shape or ())], [False])
            )  # fmt: skip
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
    return Plan(
        inputs=inputs,
        outputs=outputs,
        steps=steps,
        source=dict(source or {}),
        row_hazard=row_hazard,
        constants=builder.constants,
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
