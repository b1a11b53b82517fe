"""The ML program inside a package: loaded (Linux-safe), walked, its weights decompressed.

Used by the program executor, the weights-torch evaluator and the compression manifests.
The mapping of these weights back onto a torch architecture is ``evaluate.weights_torch``.

What follows explains why that mapping pairs ops by order.

Read the (decompressed) weights of a Core ML ML program back into its torch architecture.

Core ML predicts only on macOS. Off Apple hardware, the honest way to measure a compressed
package is to run the architecture's torch graph with exactly the weights the package stores.

The converter folds each BatchNorm into the conv before it and names the folded weights
anonymously (``const_N_to_fp16``), so names cannot be matched. The mapping therefore

1. folds BatchNorm into conv on the torch side as well (found in a ``torch.fx`` graph, or
   ``torch.export``'s where fx cannot trace, so only a BatchNorm that consumes a conv's sole
   output is folded, as coremltools does), and
2. pairs the program's conv/linear ops with the torch conv/linear calls **by order**, checking
   op kind and every shape.

Ordering: ``torch.export`` (the conversion path) and ``torch.fx`` both record calls in Python
execution order, and the coremltools pass pipeline reorders only ``cast``/``transpose`` ops
(``common::topological_reorder``); BatchNorm folding, const deduplication and compression
never move a conv. Measured on every registry model (efficientnet_lite0, mobilenet_v2,
mobilenet_v3_small, resnet18/34/50 fp16 packages; palettized, pruned and quantized variants of
mobilenet_v3_small): program order equals fx order, op for op. So the rule is strict positional
pairing, and any deviation is an error rather than a guess: re-pairing by shape could
silently swap two same-shaped layers.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .files import open_package

WEIGHT_OPS = ("conv", "linear", "conv_transpose")
CONST = "const"


class WeightMappingError(RuntimeError):
    """The package's weights do not fit the torch architecture, or cannot be read faithfully."""


@dataclass
class PackageWeight:
    """One conv/linear/conv_transpose op of the program, in program order."""

    op_name: str
    op_type: str
    weight: np.ndarray  # float32, decompressed
    bias: np.ndarray | None  # float32; None when the op has no bias input
    # "const", or the constexpr op type(s) storing the weight, producer first, joined by "+"
    # for iOS18 chains (e.g. "constexpr_lut_to_sparse+constexpr_sparse_to_dense").
    weight_encoding: str


# --------------------------------------------------------------------------- package side


def walk_ops(block: Any) -> Iterator[Any]:
    """Ops of a block in program order, descending into nested blocks where they appear."""
    for op in block.operations:
        yield op
        for nested in op.blocks:
            yield from walk_ops(nested)


def load_program(package: Path) -> Any:
    """The MIL program of a package, rebuilt from its spec and weight file (Linux-safe)."""
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    try:
        mlmodel = open_package(package, skip_model_load=True)
        spec = mlmodel.get_spec()
        return milproto_load(
            spec,
            specification_version=spec.specificationVersion,
            file_weights_dir=mlmodel.weights_dir,
        )
    except Exception as error:  # coremltools raises many types for a damaged package
        raise WeightMappingError(
            f"package {str(package)!r} cannot be read as an ML program "
            f"({type(error).__name__}: {' '.join(str(error).split())[:300]}); "
            "it may be truncated or damaged"
        ) from error


def _is_constexpr(op: Any) -> bool:
    return op is not None and op.op_type.startswith("constexpr_")


class Materialiser:
    """Decompresses constexpr outputs, following chains of any depth (cached per op).

    ``materialized_val_inference`` handles an op whose inputs are plain consts. Some iOS18 ops
    also follow one upstream constexpr, but not all (``constexpr_lut_to_dense`` with a
    quantized LUT, ``constexpr_lut_to_sparse``, ``constexpr_sparse_blockwise_shift_scale``
    read ``.val`` of their inputs, which is None for a constexpr output). For chains we
    therefore materialise the inputs ourselves and call the op class's own static
    ``decompress``, whose parameters are named after the op's inputs.
    """

    def __init__(self, package: Path) -> None:
        self.package = package
        self._cache: dict[int, tuple[Any, ...]] = {}

    def value(self, var: Any) -> np.ndarray:
        if var.val is not None:
            return np.asarray(var.val)
        op = var.op
        if not _is_constexpr(op):
            kind = "a function input" if op is None else f"a {op.op_type} op"
            raise WeightMappingError(
                f"{self.package}: {var.name} is computed by {kind}, not stored as a constant"
            )
        outputs = self._op_values(op)
        return np.asarray(outputs[list(op.outputs).index(var)])

    def _op_values(self, op: Any) -> tuple[Any, ...]:
        key = id(op)
        if key not in self._cache:
            if all(var.val is not None for var in op.inputs.values()):
                result = op.materialized_val_inference()
            else:
                result = self._decompress_chain(op)
            # Multi-output ops (sparse ones give (mask, nonzero_data)) return tuples.
            self._cache[key] = tuple(result) if isinstance(result, (list, tuple)) else (result,)
        return self._cache[key]

    def _decompress_chain(self, op: Any) -> Any:
        decompress = getattr(type(op), "decompress", None)
        if decompress is None:
            raise WeightMappingError(
                f"{self.package}: cannot decompress chained {op.op_type} op {op.name}"
            )
        kwargs = {}
        for name in inspect.signature(decompress).parameters:
            var = op.inputs.get(name)
            if var is None and name not in _optional_inputs(op):
                raise WeightMappingError(
                    f"{self.package}: {op.op_type}.decompress expects {name!r}, "
                    f"which op {op.name} does not have"
                )
            kwargs[name] = None if var is None else self.value(var)
        return decompress(**kwargs)


def _optional_inputs(op: Any) -> set[str]:
    return {name for name, spec in op.input_spec.input_types.items() if spec.optional}


def _encoding(var: Any) -> str:
    """ "const", or the chain of constexpr op types that produces ``var`` (producer first)."""
    types: list[str] = []

    def visit(op: Any) -> None:
        for upstream in op.inputs.values():
            if _is_constexpr(upstream.op):
                visit(upstream.op)
        if op.op_type not in types:
            types.append(op.op_type)

    if not _is_constexpr(var.op):
        return CONST
    visit(var.op)
    return "+".join(types)


def _check_constexpr_uses(package: Path, ops: list[Any]) -> None:
    """Every compressed constant must end up as a conv/linear weight or bias.

    Otherwise a compressed tensor (e.g. a palettized embedding or a matmul operand) would be
    missed, and the torch model would silently run with its own uncompressed values.
    """
    for index, op in enumerate(ops):
        if not _is_constexpr(op):
            continue
        for out in op.outputs:
            for child in out.child_ops:
                if _is_constexpr(child):
                    continue  # a later stage of the same chain; its own uses are checked
                slot = next((k for k, v in child.inputs.items() if v is out), None)
                if child.op_type in WEIGHT_OPS and slot in ("weight", "bias"):
                    continue
                raise WeightMappingError(
                    f"{package}: compressed constant {out.name} (op {index}, {op.op_type}, "
                    f"shape {tuple(out.shape)}) feeds input {slot!r} of {child.op_type} op "
                    f"{child.name}; only conv/linear weights and biases can be read back"
                )
            if out in op.enclosing_block.outputs:
                raise WeightMappingError(
                    f"{package}: compressed constant {out.name} (op {index}, {op.op_type}) "
                    "is a block output; only conv/linear weights and biases can be read back"
                )


def read_package_weights(package: Path) -> list[PackageWeight]:
    """conv/linear/conv_transpose weights and biases in program order, as float32.

    Compressed (constexpr) weights are decompressed to exactly the values Core ML would
    compute; fp16 values become float32 without rounding.
    """
    package = Path(package)
    program = load_program(package)
    ops = list(walk_ops(program.functions["main"]))
    _check_constexpr_uses(package, ops)
    materialiser = Materialiser(package)
    weights = []
    for op in ops:
        if op.op_type not in WEIGHT_OPS:
            continue
        weight_var = op.inputs["weight"]
        bias_var = op.inputs.get("bias")
        weights.append(
            PackageWeight(
                op_name=op.name,
                op_type=op.op_type,
                weight=materialiser.value(weight_var).astype(np.float32),
                bias=None if bias_var is None else materialiser.value(bias_var).astype(np.float32),
                weight_encoding=_encoding(weight_var),
            )
        )
    return weights
