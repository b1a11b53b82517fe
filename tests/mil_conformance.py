"""The executor's conformance harness: each op, in each mode, against MIL's own definition.

A ``Case`` builds one small MIL program with coremltools' builder (``mb``), runs it through
the compiled executor at fp32 and at fp16 inputs, and compares every output with the
reference:

* by default MIL's own ``value_inference`` - the same op built on constant inputs, so
  coremltools computes the result from its op definition (``.val``);
* where the op has no value inference (conv, pooling, norms, resizing, ...), a numpy
  reference written in the case from the op's documented formula.

fp16 cases feed fp16-rounded inputs and allow one fp16 rounding of the result per output
element (plus ``tolerance`` × fp16 epsilon × the output's scale for ops that accumulate);
fp32 cases allow 1e-5 of the output's scale. ``exact`` cases (selection, shape, integer and
boolean ops) must match bit for bit.

A ``Refusal`` is a mode the executor does not implement: compiling it must fail before
anything runs, naming the op and the reason.

Case lists live in ``tests/executor/cases/<family>.py`` (``CASES``, ``REFUSALS``);
``all_cases()`` gathers them for the test module and ``benchmarks/executor_conformance.py``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CASE_DIR = Path(__file__).parent / "executor" / "cases"


@dataclass
class Case:
    op: str  # the MIL op type under test
    label: str  # the mode / attributes exercised, e.g. "axis=-1 keep_dims"
    inputs: dict[str, np.ndarray]  # the program's inputs (float ones run at fp32 and fp16)
    build: Callable[..., Any]  # (**mil vars) -> output var or tuple of vars, via ``mb``
    reference: Callable[..., Any] | None = None  # (**float64 arrays) -> array(s); None: MIL
    exact: bool = False
    tolerance: float = 1.0  # extra fp16 epsilons of the output scale (accumulating ops)
    dtypes: tuple[str, ...] = ("fp32", "fp16")
    opset: str = "iOS18"

    @property
    def id(self) -> str:
        return f"{self.op}[{self.label}]"


@dataclass
class Refusal:
    op: str
    label: str
    inputs: dict[str, np.ndarray]
    build: Callable[..., Any]
    reason: str  # a fragment the error message must contain
    opset: str = "iOS18"

    @property
    def id(self) -> str:
        return f"{self.op}[{self.label}]"


@dataclass
class Gathered:
    cases: list[Case] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


def lit(like: Any, value: Any) -> np.ndarray:
    """A constant of ``like``'s float type (fp16 or fp32) for a MIL op's attribute: the MIL
    builder wants a ``const T`` input to match the tensor's type."""
    fp16 = getattr(getattr(like, "dtype", None), "__name__", "") == "fp16"
    return np.asarray(value, dtype=np.float16 if fp16 else np.float32)


def all_cases() -> Gathered:
    """Every case file's cases; ``CONFORMANCE_FILES=a,b`` restricts them to those files."""
    import os

    only = {n for n in os.environ.get("CONFORMANCE_FILES", "").split(",") if n}
    gathered = Gathered()
    for path in sorted(CASE_DIR.glob("*.py")):
        if only and path.stem not in only:
            continue
        spec = importlib.util.spec_from_file_location(f"conformance_cases_{path.stem}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        gathered.cases += getattr(module, "CASES", [])
        gathered.refusals += getattr(module, "REFUSALS", [])
    return gathered


def _typed(inputs: dict[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    target = np.float16 if dtype == "fp16" else np.float32
    return {k: v.astype(target) if v.dtype.kind == "f" else v for k, v in inputs.items()}


def _mil_dtype(array: np.ndarray) -> Any:
    from coremltools.converters.mil.mil import types

    return types.numpy_type_to_builtin_type(array.dtype)


def build_program(build: Callable[..., Any], inputs: dict[str, np.ndarray], opset: str) -> Any:
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    specs = [mb.TensorSpec(shape=value.shape, dtype=_mil_dtype(value)) for value in inputs.values()]
    names = list(inputs)

    # The builder names a program's inputs after its function's parameters (co_varnames),
    # so the body is made with the case's input names as parameters.
    namespace: dict[str, Any] = {"build": build}
    arguments = ", ".join(f"{n}={n}" for n in names)
    exec(f"def body({', '.join(names)}):\n    return build({arguments})", namespace)
    return mb.program(input_specs=specs, opset_version=getattr(ct.target, opset))(namespace["body"])


def mil_reference(case: Case, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The op built on constants: coremltools' value inference computes the result."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    results: list[Any] = []

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(1,))], opset_version=getattr(ct.target, case.opset)
    )
    def program(unused: Any) -> Any:
        constants = {k: mb.const(val=v) for k, v in inputs.items()}
        out = case.build(**constants)
        outs = out if isinstance(out, (list, tuple)) else (out,)
        results.extend(outs)
        return unused

    values = [o.val for o in results]
    if any(v is None for v in values):
        raise AssertionError(f"{case.id}: MIL has no value inference for this op; give a reference")
    return [np.asarray(v) for v in values]


def run_case(case: Case, dtype: str, device: str = "cpu") -> None:
    """Run one case at one dtype and assert the executor's outputs equal the reference."""
    from coreml_bench.executor import CompiledProgram

    inputs = _typed(case.inputs, dtype)
    program = build_program(case.build, inputs, case.opset)
    compiled = CompiledProgram.from_program(program, device=device)
    got_named = compiled.run(
        **{info.name: inputs[name] for info, name in zip(compiled.inputs, inputs, strict=True)}
    )
    got = [v.detach().cpu().numpy() for v in got_named.values()]
    _check_fresh(compiled, inputs)
    if case.reference is None:
        expected = mil_reference(case, inputs)
    else:
        wide = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in inputs.items()}
        out = case.reference(**wide)
        expected = [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else (out,))]
    assert len(got) == len(expected), f"{case.id}: {len(got)} outputs, expected {len(expected)}"
    for index, (g, e) in enumerate(zip(got, expected, strict=True)):
        where = f"{case.id} at {dtype}, output {index}"
        assert tuple(g.shape) == tuple(e.shape), f"{where}: shape {g.shape} != {e.shape}"
        if e.dtype.kind == "b" or g.dtype.kind == "b":
            assert g.dtype.kind == "b" and e.dtype.kind == "b", (
                f"{where}: dtype {g.dtype} vs {e.dtype}"
            )
        if case.exact or e.dtype.kind in "iub":
            assert np.array_equal(g.astype(np.float64), e.astype(np.float64), equal_nan=True), (
                f"{where}: not exact\n got {g.reshape(-1)[:12]}\n want {e.reshape(-1)[:12]}"
            )
            continue
        g64, e64 = g.astype(np.float64), e.astype(np.float64)
        finite = np.isfinite(e64)
        assert np.array_equal(np.isfinite(g64), finite), f"{where}: non-finite values differ"
        assert np.array_equal(np.isnan(g64), np.isnan(e64)), f"{where}: NaNs differ"
        scale = float(np.abs(e64[finite]).max()) if finite.any() else 0.0
        if dtype == "fp16":
            # The result is rounded to fp16 once; the reference may be too: two half-ulps.
            ulp = np.spacing(np.abs(e64[finite]).astype(np.float16)).astype(np.float64)
            bound = ulp + case.tolerance * 2.0**-10 * scale
        else:
            bound = 1e-5 * max(scale, 1e-30) + 1e-5 * np.abs(e64[finite])
        error = np.abs(g64[finite] - e64[finite])
        assert (error <= bound).all(), (
            f"{where}: max error {error.max():.3g} over bound (scale {scale:.3g})\n"
            f" got {g64.reshape(-1)[:8]}\n want {e64.reshape(-1)[:8]}"
        )


def _check_fresh(compiled: Any, inputs: dict[str, np.ndarray]) -> None:
    """Ops marked ``fresh`` must never return memory an input owns: the graph rounds their
    results in place, which would otherwise overwrite the input."""
    import torch
    from coreml_bench.executor.ops import OPS
    from coreml_bench.executor.plan import resolve

    env: dict[str, Any] = {
        info.name: torch.as_tensor(inputs[name]).float()
        if inputs[name].dtype.kind == "f"
        else torch.as_tensor(inputs[name])
        for info, name in zip(compiled.inputs, inputs, strict=True)
    }

    ref, const = env.__getitem__, compiled.plan.constants.__getitem__
    for step in compiled.plan.steps:
        entry = OPS[step.op]
        kwargs = {k: resolve(v, ref, const) for k, v in step.inputs.items()}
        if entry.takes_op:
            kwargs["op"] = step.op
        result = entry.run(**kwargs)
        results = result if isinstance(result, tuple) else (result,)
        if entry.fresh:
            owned = {t.untyped_storage().data_ptr() for t in _tensors(list(kwargs.values()))}
            for out in results:
                if isinstance(out, torch.Tensor) and out.numel():
                    assert out.untyped_storage().data_ptr() not in owned, (
                        f"{step.op} is registered fresh=True but returned an input's memory"
                    )
        env.update(zip(step.outputs, results, strict=True))


def _tensors(values: list[Any]) -> list[Any]:
    import torch

    found = []
    for v in values:
        if isinstance(v, torch.Tensor):
            found.append(v)
        elif isinstance(v, list):
            found += _tensors(v)
    return found


def run_refusal(refusal: Refusal) -> str:
    """Compile the refused program; return the error message (the test checks it)."""
    from coreml_bench.executor import CompiledProgram, UnsupportedOpError

    program = build_program(refusal.build, refusal.inputs, refusal.opset)
    try:
        CompiledProgram.from_program(program)
    except UnsupportedOpError as error:
        return str(error)
    raise AssertionError(f"{refusal.id}: compiled, but the executor should refuse it")
