"""Run a compiled program: named inputs and outputs, the program's own shapes as the contract.

``CompiledProgram.run`` takes inputs of exactly the shapes the program declares (flexible
axes within their declared ranges or enumerated shapes) and returns every output by name.
Any other shape is an error naming the input - never a silently re-shaped answer.

``CompiledProgram.rows`` is the evaluation convenience: N samples stacked along axis 0 for
a program that declares (1, ...) inputs. It runs them at once only where that is exact - a
flexible leading axis, or a program the compiler proved keeps rows apart (``Plan.row_hazard``
is None) - and otherwise one sample at a time.

A stateful program (iOS18 state inputs) runs with ``run(..., state=program.make_state())``:
the state's buffers are the caller's, zero-filled as Core ML allocates them (``MLModel
.makeState``: "The allocated state buffers are initialized to zeros"), and every call
updates them in place. Stacked samples (``rows``) would share one state: refused.

The plan is compiled once and cached beside its package (``<package>.torch``), keyed by the
package's bytes and the compiler's code; loading it imports neither coremltools nor the MIL
program.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import atomic_directory, directory_sha256
from .graph import build_graph_module, example_inputs
from .plan import PLAN_FILE, Plan, ShapeError, TensorInfo

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CACHE_SUFFIX = ".torch"


def plan_folder(package: Path) -> Path:
    """Where a package's compiled plan is cached: ``m.mlpackage`` → ``m.mlpackage.torch``."""
    package = Path(package)
    return package.with_name(package.name + CACHE_SUFFIX)


def compiler_version() -> str:
    """A digest of the code that decides what a plan contains (compiler, op table flags)."""
    here = Path(__file__).parent
    files = sorted([here / "compiler.py", here / "plan.py", *(here / "ops").glob("*.py")])
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


REFUSED_FILE = "refused.json"


def _cache_key(package: Path) -> dict[str, str]:
    return {"package_sha256": directory_sha256(package), "compiler": compiler_version()}


def _cached(folder: Path, key: dict[str, str]) -> Plan | None:
    """The plan cached in ``folder`` if it was compiled from these package bytes by this
    compiler; a cached refusal is raised again (the program was checked and refused)."""
    from .ops.registry import UnsupportedOpError

    refused = folder / REFUSED_FILE
    if refused.is_file():
        record = json.loads(refused.read_text())
        if all(record.get(k) == v for k, v in key.items()):
            raise UnsupportedOpError(record["reason"])
        return None
    if not (folder / PLAN_FILE).is_file():
        return None
    try:
        plan = Plan.load(folder)
    except (ValueError, OSError, RuntimeError) as error:
        log.warning("%s: cached plan unreadable (%s); recompiling", folder, error)
        return None
    if all(plan.source.get(k) == v for k, v in key.items()):
        return plan
    log.info("%s: cached plan is for other package bytes or another compiler; recompiling", folder)
    return None


def load_or_compile(package: Path, cache: bool = True) -> Plan:
    """The package's plan: from the cache beside it (``plan_folder``) when it matches the
    package's bytes and this compiler, else compiled (coremltools) and, with ``cache``,
    written there."""
    package = Path(package)
    key = _cache_key(package)
    if cache:
        plan = _cached(plan_folder(package), key)
        if plan is not None:
            return plan
    from .compiler import compile_package

    plan = compile_package(package)
    plan.source.update(key)
    if cache:
        plan.save(plan_folder(package))
    return plan


def compile_to(package: Path, folder: Path) -> None:
    """Compile a package's program into ``folder`` (rule compile_program): the plan, or - for
    a program the executor refuses - the refusal with every reason, which loading raises
    again. A refused program is no failed job: Core ML itself may still run the package."""
    from .compiler import compile_package
    from .ops.registry import UnsupportedOpError

    package, folder = Path(package), Path(folder)
    key = _cache_key(package)
    try:
        plan = compile_package(package)
    except UnsupportedOpError as error:
        log.warning("%s", error)
        with atomic_directory(folder) as staging:
            staging.mkdir()
            (staging / REFUSED_FILE).write_text(json.dumps({**key, "reason": str(error)}, indent=1))
        return
    plan.source.update(key)
    plan.save(folder)
    log.info("%s: %d ops compiled into %s", package, len(plan.steps), folder)


class CompiledProgram:
    """A program compiled to a ``torch.fx`` GraphModule, on one device."""

    def __init__(self, plan: Plan, device: str = "cpu", name: str = "program") -> None:
        import torch

        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested, but torch sees no CUDA device")
        self.plan = plan
        self.name = name
        self.device = torch.device(device)
        self.module = build_graph_module(plan, device=str(self.device))
        self._rows_module: Any = None
        self.inputs: list[TensorInfo] = plan.inputs
        self.outputs: list[TensorInfo] = plan.outputs
        self.row_hazard = plan.row_hazard
        self.states: list[TensorInfo] = plan.states

    @classmethod
    def from_package(
        cls, package: Path, device: str = "cpu", cache: bool = True
    ) -> CompiledProgram:
        return cls(load_or_compile(package, cache=cache), device=device, name=str(package))

    @classmethod
    def from_program(cls, program: Any, device: str = "cpu") -> CompiledProgram:
        """From a MIL ``Program`` in memory (tests, the conformance suite)."""
        from .compiler import compile_program

        return cls(compile_program(program), device=device)

    # ------------------------------------------------------------------ as declared
    def _arrange(self, args: tuple[Any, ...], named: dict[str, Any]) -> list[torch.Tensor]:
        import torch

        if args and named:
            raise TypeError(f"{self.name}: pass inputs by position or by name, not both")
        if args:
            if len(args) != len(self.inputs):
                raise TypeError(
                    f"{self.name}: the program takes {len(self.inputs)} input(s) "
                    f"({', '.join(i.name for i in self.inputs)}); got {len(args)}"
                )
            values = list(args)
        else:
            unknown = sorted(set(named) - {i.name for i in self.inputs})
            missing = [i.name for i in self.inputs if i.name not in named]
            if unknown or missing:
                raise TypeError(
                    f"{self.name}: inputs are {[i.name for i in self.inputs]}; "
                    f"missing {missing}, unknown {unknown}"
                )
            values = [named[i.name] for i in self.inputs]
        return [torch.as_tensor(v).to(self.device) for v in values]

    def make_state(self) -> dict[str, torch.Tensor]:
        """Fresh buffers for the program's states, by name, zero-filled as Core ML allocates
        them: float32 for fp16 / fp32 states (holding fp16 values for fp16), else the
        state's int32 / bool dtype. Pass them to ``run(..., state=...)``; read them freely
        between calls."""
        import torch

        return {
            info.name: torch.zeros(info.shape, dtype=_state_dtype(info), device=self.device)
            for info in self.states
        }

    def _state_buffers(self, state: dict[str, torch.Tensor] | None) -> list[torch.Tensor]:
        if not self.states:
            if state:
                raise TypeError(f"{self.name}: the program has no state; got {sorted(state)}")
            return []
        if state is None:
            raise TypeError(
                f"{self.name}: the program is stateful ({[s.name for s in self.states]}); "
                "pass state=program.make_state() (updated in place, call after call)"
            )
        names = [info.name for info in self.states]
        if sorted(state) != sorted(names):
            raise TypeError(f"{self.name}: states are {names}; got {sorted(state)}")
        for info in self.states:
            buffer, dtype = state[info.name], _state_dtype(info)
            on_device = buffer.device.type == self.device.type and (
                self.device.index is None or buffer.device.index == self.device.index
            )
            if list(buffer.shape) != info.shape or buffer.dtype != dtype or not on_device:
                # Buffers are written in place: a converted copy would lose the update.
                raise TypeError(
                    f"{self.name}: state {info.name!r} must be a {dtype} tensor of shape "
                    f"{tuple(info.shape)} on {self.device} (as make_state gives); got "
                    f"{buffer.dtype} {tuple(buffer.shape)} on {buffer.device}"
                )
        return [state[name] for name in names]

    def run(
        self, *args: Any, state: dict[str, torch.Tensor] | None = None, **named: Any
    ) -> dict[str, torch.Tensor]:
        """Run once with inputs of the program's declared shapes; every output by name.
        ``state`` (stateful programs only): the buffers from ``make_state``, updated in
        place."""
        import torch

        if state is not None and not self.states and "state" in {i.name for i in self.inputs}:
            named["state"] = state  # an input named "state" of a stateless program
            state = None
        buffers = self._state_buffers(state)
        tensors = self._arrange(args, named)
        for info, tensor in zip(self.inputs, tensors, strict=True):
            try:
                info.check(tuple(tensor.shape))
            except ShapeError as error:
                raise ShapeError(f"{self.name}: {error}") from None
        with torch.no_grad():
            results = self.module(*tensors, *buffers)
        return {info.name: _plain(v) for info, v in zip(self.outputs, results, strict=True)}

    # ------------------------------------------------------------------ stacked samples
    def rows(self, *args: Any, **named: Any) -> dict[str, torch.Tensor]:
        """N samples stacked along axis 0 of each (1, ...) input; outputs stacked likewise.

        Exact by construction: at once where the leading axis is flexible or the compiler
        proved rows stay apart, otherwise one sample at a time.
        """
        import torch

        if self.states:
            raise TypeError(
                f"{self.name}: the program is stateful ({[s.name for s in self.states]}): "
                "stacked samples would share one state within the call; run them one by one "
                "with run(..., state=...)"
            )
        tensors = self._arrange(args, named)
        counts = {int(t.shape[0]) if t.ndim else -1 for t in tensors}
        if len(counts) != 1 or -1 in counts:
            raise ShapeError(f"{self.name}: inputs disagree on the number of samples {counts}")
        n = counts.pop()
        per_row = all(i.shape and i.shape[0] in (1, None) for i in self.inputs)
        # A cond's branch (a loop's trip count) would be one for all N rows: never at once.
        branches = any(step.blocks for step in self.plan.steps) and per_row and n != 1
        try:
            for info, tensor in zip(self.inputs, tensors, strict=True):
                info.check(tuple(tensor.shape))
            if not branches:
                return self.run(*tensors)  # the program takes N itself (flexible leading axis)
        except ShapeError:
            if not per_row:
                raise
        for info, tensor in zip(self.inputs, tensors, strict=True):
            try:
                info.check((1, *tensor.shape[1:]))
            except ShapeError as error:
                raise ShapeError(f"{self.name}: {error}") from None
        with torch.no_grad():
            if self.row_hazard is None:
                if self._rows_module is None:
                    self._rows_module = build_graph_module(
                        self.plan, rows=True, device=str(self.device)
                    )
                results = self._rows_module(*tensors)
            else:
                per_sample = [self.module(*(t[i : i + 1] for t in tensors)) for i in range(n)]
                results = tuple(torch.cat(parts) for parts in zip(*per_sample, strict=True))
        return {info.name: _plain(v) for info, v in zip(self.outputs, results, strict=True)}

    def example_inputs(self, batch: int | None = None) -> tuple[torch.Tensor, ...]:
        return tuple(t.to(self.device) for t in example_inputs(self.plan, batch))


def _state_dtype(info: TensorInfo) -> torch.dtype:
    """A state buffer's dtype: float32 holds fp16 and fp32 states (as every op reads them)."""
    import torch

    if info.dtype in ("fp16", "fp32"):
        return torch.float32
    return torch.bool if info.dtype == "bool" else torch.int32


def _plain(value: Any) -> Any:
    """Outputs in the default (contiguous) layout, whatever layout the graph computed in."""
    return value.contiguous() if hasattr(value, "contiguous") else value


class ProgramExecutor(CompiledProgram):
    """The evaluation view: one input, a batch of samples in, the first output out."""

    def __init__(self, package: Path, device: str = "cpu", cache: bool = True) -> None:
        import torch

        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested, but torch sees no CUDA device")
        from .ops.registry import UnsupportedOpError

        self.package = Path(package)
        plan = load_or_compile(self.package, cache=cache)
        if plan.states:
            # Evaluation feeds independent samples; a state carries one call into the next.
            raise UnsupportedOpError(
                f"{self.package}: a stateful program (states "
                f"{', '.join(repr(s.name) for s in plan.states)}) cannot be evaluated sample "
                "by sample; use CompiledProgram.run(..., state=program.make_state())"
            )
        super().__init__(plan, device, str(package))
        first = self.inputs[0]
        self.input_name = first.name
        self.input_shape = tuple(1 if d is None else d for d in first.shape)
        self.output_name = self.outputs[0].name
        self.batch_hazard = self.row_hazard
        if len(self.inputs) != 1:
            raise ShapeError(
                f"{self.package}: takes {len(self.inputs)} inputs "
                f"({', '.join(i.name for i in self.inputs)}); evaluation feeds one - "
                "use CompiledProgram.run with named inputs"
            )

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        batch = batch.to(self.device, torch.float32)
        return self.rows(batch)[self.output_name].float().cpu()
