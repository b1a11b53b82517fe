"""Run the ML program inside an ``.mlpackage`` op by op with torch tensors (off Apple hardware).

Core ML predicts only on macOS. This executor measures the artifact itself elsewhere: it loads
the package's MIL program with coremltools (spec + weight file, Linux-safe), decompresses every
``constexpr_*`` weight to exactly the values Core ML would compute, and evaluates the ops in
program order with torch, batched, on CPU or CUDA.

fp16 semantics: weights are fp16 values held in float32; every op whose MIL output type is fp16
has its result rounded to fp16, so activations carry fp16 precision between ops while each op
accumulates in float32 (as Core ML's GPU and Neural Engine do). Activation ``quantize`` /
``dequantize`` ops (W8A8 programs) are executed, not skipped.

Each op follows its definition in coremltools' MIL op set (``coremltools.converters.mil.mil.ops
.defs``). An op the executor does not know stops it before anything runs, with every
unsupported op type of the program listed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..mlpackage.program import Materialiser, load_program, walk_ops
from .ops import OPS
from .ops.registry import UnsupportedOpError, int_list

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


CONSTANT_OPS = ("const",)


# Ops whose outputs are fp16 values whenever their inputs are: they select, move or compare
# values (max, clamp to fp16 bounds) without arithmetic, so rounding their result again is an
# exact no-op - and skipping it saves a quarter of the executor's time on MobileNets.
EXACT_IN_FP16 = frozenset(
    {
        "relu", "thresholded_relu", "max_pool", "reduce_max", "reduce_min", "maximum",
        "minimum", "reshape", "transpose", "squeeze", "expand_dims", "concat", "split",
        "tile", "upsample_nearest_neighbor",
    }
)  # fmt: skip


def _is_constant(op: Any) -> bool:
    return op.op_type in CONSTANT_OPS or op.op_type.startswith("constexpr_")


def unsupported_ops(program: Any) -> list[str]:
    """Op types of the program's main function this executor cannot run (sorted)."""

    found = set()
    for op in walk_ops(program.functions["main"]):
        if op.blocks:
            found.add(f"{op.op_type} (control flow)")
        elif not _is_constant(op) and op.op_type not in OPS:
            found.add(op.op_type)
    return sorted(found)


def batch_hazard(function: Any) -> str | None:
    """Why running this batch-1 program on N samples at once could mix samples, or None.

    Batching along axis 0 is exact only while every computed tensor keeps the batch as its
    leading axis and no op reaches across it. Programs that fold the batch into another axis
    (MobileViT's unfolding reshapes) or transpose it away are run one sample at a time.
    """
    for op in function.operations:
        if _is_constant(op):
            continue
        for out in op.outputs:
            shape = getattr(out, "shape", ())
            if len(shape) >= 1 and shape[0] != 1:
                return f"{op.op_type} {out.name!r} has shape {tuple(shape)} (batch axis folded)"
        inputs = op.inputs
        rank = len(getattr(inputs.get("x"), "shape", ()) or ())
        if op.op_type == "transpose" and int_list(inputs["perm"].val)[0] != 0:
            return f"transpose {op.outputs[0].name!r} moves the batch axis"
        if op.op_type == "tile" and int_list(inputs["reps"].val)[0] != 1:
            return f"tile {op.outputs[0].name!r} repeats along the batch axis"
        for key in ("axis", "axes"):
            var = inputs.get(key)
            if var is None:
                if key == "axes" and (op.op_type.startswith("reduce_") or op.op_type == "squeeze"):
                    return f"{op.op_type} {op.outputs[0].name!r} acts on every axis"
                continue
            axes = int_list(var.val) if var.val is not None else [0]
            if rank and any(a % rank == 0 for a in axes):
                return f"{op.op_type} {op.outputs[0].name!r} acts on the batch axis"
    return None


class ProgramExecutor:
    """Callable: float32 batch (N, *input shape[1:]) → the program's first output, batched.

    Constants and decompressed weights are prepared once; calls run only the compute ops.
    Programs whose ops reach across the batch axis run sample by sample (``batch_hazard``).
    """

    def __init__(self, package: Path, device: str = "cpu") -> None:
        import torch
        from coremltools.converters.mil.mil import types

        self.package = Path(package)
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested, but torch sees no CUDA device")
        self.device = torch.device(device)
        program = load_program(self.package)
        missing = unsupported_ops(program)
        if missing:
            raise UnsupportedOpError(
                f"{self.package}: the mil-torch executor does not implement op(s) "
                f"{', '.join(missing)}; nothing was run"
            )
        function = program.functions["main"]
        if len(function.inputs) != 1:
            raise UnsupportedOpError(
                f"{self.package}: programs with {len(function.inputs)} inputs are not supported"
            )
        self.input_name, input_var = next(iter(function.inputs.items()))
        self.input_shape = tuple(int(d) for d in input_var.shape)
        self.output_name = function.outputs[0].name
        self.batch_hazard = batch_hazard(function)
        if self.batch_hazard:
            log.info("%s: running one sample at a time: %s", self.package, self.batch_hazard)
        materialiser = Materialiser(self.package)
        self._steps: list[tuple[str, dict[str, Any], list[str], list[bool]]] = []
        for op in function.operations:
            if _is_constant(op):
                continue
            arguments: dict[str, Any] = {"__op__": op.op_type}
            for name, var in op.inputs.items():
                arguments[name] = self._argument(var, materialiser)
            outputs = [out.name for out in op.outputs]
            # Rounding only where the op can leave the fp16 grid (see EXACT_IN_FP16).
            fp16 = [
                out.dtype == types.fp16 and op.op_type not in EXACT_IN_FP16 for out in op.outputs
            ]
            self._steps.append((op.op_type, arguments, outputs, fp16))

    def _argument(self, var: Any, materialiser: Any) -> Any:
        """A variable's name (computed at run time), or its constant value, prepared once."""
        import torch

        if isinstance(var, (list, tuple)):
            return [self._argument(v, materialiser) for v in var]
        if var.op is not None and not _is_constant(var.op):
            return _Ref(var.name)
        if var.op is None and var.val is None:
            return _Ref(var.name)  # the function input
        value = var.val if var.val is not None else materialiser.value(var)
        array = np.asarray(value)
        if array.dtype.kind == "f" and array.ndim >= 1:
            return torch.from_numpy(array.astype(np.float32)).to(self.device)
        return array

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        expected = self.input_shape[1:]
        if tuple(batch.shape[1:]) != expected:
            raise ValueError(
                f"{self.package}: input {self.input_name!r} expects (N, {expected}), "
                f"got {tuple(batch.shape)}"
            )
        batch = batch.to(self.device, torch.float32)
        if self.batch_hazard and batch.shape[0] > 1:
            return torch.cat([self._run(sample[None]) for sample in batch])
        return self._run(batch)

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        n = int(batch.shape[0])
        env: dict[str, Any] = {self.input_name: batch}
        with torch.no_grad():
            for op_type, arguments, outputs, fp16 in self._steps:
                resolved = {k: _resolve(v, env) for k, v in arguments.items()}
                # quantize/dequantize name their tensor "input"; every op function reads "x".
                if "input" in resolved and "x" not in resolved:
                    resolved["x"] = resolved["input"]
                result = OPS[op_type](resolved, n)
                results = result if isinstance(result, tuple) else (result,)
                for name, value, is_fp16 in zip(outputs, results, fp16, strict=True):
                    env[name] = _round_fp16(value) if is_fp16 else value
        return env[self.output_name].float().cpu()


class _Ref:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def _resolve(value: Any, env: dict[str, Any]) -> Any:
    if isinstance(value, _Ref):
        return env[value.name]
    if isinstance(value, list):
        return [_resolve(v, env) for v in value]
    return value


def _round_fp16(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor) and value.dtype == torch.float32:
        return value.to(torch.float16).to(torch.float32)
    return value
