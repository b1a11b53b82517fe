"""The weight tensors of a package as stored: which const feeds each conv/linear, under what
name, and how many bytes of ``weight.bin`` it (and every constexpr input behind it) takes.

Read from the package's protobuf spec alone (no MIL rebuild, no coremltools ops): per-layer
sensitivity and the mixed-precision search price each tensor's settings in the bytes the
package really holds, 64-byte blob headers and alignment included.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import load_spec

WEIGHT_OPS = ("conv", "linear", "conv_transpose")
WEIGHT_FILE = "Data/com.apple.CoreML/weights/weight.bin"


@dataclass(frozen=True)
class StoredWeight:
    """One conv/linear weight: the op that reads it, the const that holds it (the name
    coremltools' ``op_name_configs`` take), and what it occupies in ``weight.bin``."""

    op_name: str
    op_type: str
    const_name: str  # the op producing the weight: a const, or the last constexpr of a chain
    encoding: str  # "const", or the constexpr op types of its chain, producer first
    stored_bytes: int  # blob bytes behind it in weight.bin (headers and padding included)


def _operations(block: Any) -> Iterator[Any]:
    for op in block.operations:
        yield op
        for nested in op.blocks:
            yield from _operations(nested)


def _blob_offsets(op: Any) -> list[int]:
    """Offsets of the blobs an op holds: a const's ``val`` attribute, or (iOS18 constexpr
    ops) values given inline as its input arguments."""
    values = list(op.attributes.values())
    values += [a.value for arg in op.inputs.values() for a in arg.arguments if a.HasField("value")]
    return [v.blobFileValue.offset for v in values if v.WhichOneof("value") == "blobFileValue"]


def _op_name(op: Any) -> str:
    """The op's own name (what the executor's plan steps are named), else its output's."""
    name = op.attributes.get("name")
    if name is not None and name.WhichOneof("value") == "immediateValue":
        return str(name.immediateValue.tensor.strings.values[0])
    return str(op.outputs[0].name)


def blob_sizes(package: Path) -> dict[int, int]:
    """Bytes each blob of ``weight.bin`` spans, by offset: up to the next blob (or the end)."""
    spec = load_spec(package)
    offsets = sorted(
        {
            offset
            for function in spec.mlProgram.functions.values()
            for block in function.block_specializations.values()
            for op in _operations(block)
            for offset in _blob_offsets(op)
        }
    )
    weight_file = Path(package) / WEIGHT_FILE
    end = weight_file.stat().st_size if weight_file.exists() else 0
    bounds = [*offsets[1:], end]
    return {offset: bound - offset for offset, bound in zip(offsets, bounds, strict=True)}


def stored_weights(package: Path) -> list[StoredWeight]:
    """Every conv/linear/conv_transpose weight of ``main``, in program order."""
    spec = load_spec(package)
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    sizes = blob_sizes(package)
    producers = {out.name: op for op in _operations(block) for out in op.outputs}

    def chain(name: str) -> list[Any]:
        """The const/constexpr ops behind a value, producer first."""
        op = producers.get(name)
        if op is None or not (op.type == "const" or op.type.startswith("constexpr_")):
            return []
        upstream = [
            p for arg in op.inputs.values() for a in arg.arguments if a.name for p in chain(a.name)
        ]
        return [*upstream, op]

    weights = []
    for op in _operations(block):
        if op.type not in WEIGHT_OPS or "weight" not in op.inputs:
            continue
        name = op.inputs["weight"].arguments[0].name
        ops = chain(name)
        if not ops:
            continue  # a computed weight (e.g. dequantized at run time) has no stored tensor
        kinds = list(dict.fromkeys(o.type for o in ops if o.type != "const"))
        weights.append(
            StoredWeight(
                op_name=_op_name(op),
                op_type=op.type,
                const_name=name,
                encoding="+".join(kinds) or "const",
                stored_bytes=sum(sizes[offset] for o in ops for offset in _blob_offsets(o)),
            )
        )
    return weights
