"""A compiled program: the ops of an ML program as plain data, saved beside its package.

``compiler.compile_program`` reads a MIL program (with coremltools) once and writes a ``Plan``:
named, typed inputs and outputs with their declared shapes, and every compute op as a step
whose arguments are references to earlier results, literals (axes, modes, scalars) or keys of
stored tensors (weights, already decompressed). Loading a plan needs neither coremltools nor
pickle: ``plan.json`` is JSON and ``constants.pt`` holds tensors only (``weights_only``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import atomic_directory

if TYPE_CHECKING:
    import torch

# Bump when the meaning of a plan changes; a cached plan of another format is recompiled.
PLAN_FORMAT = 2  # 2: ``states``; steps may hold nested blocks (control flow)
PLAN_FILE = "plan.json"
CONSTANTS_FILE = "constants.pt"


class ShapeError(ValueError):
    """An input's shape is outside what the program declares (named, with both shapes)."""


@dataclass
class TensorInfo:
    """A program input or output as the program declares it.

    ``shape``: one entry per axis, ``None`` where the axis is flexible. ``ranges`` (per axis,
    [low, high], high -1 for unbounded) or ``enumerated`` (allowed whole shapes) come from the
    package's description where it declares flexible shapes.
    """

    name: str
    dtype: str  # MIL dtype: fp16, fp32, int32, bool, ...
    shape: list[int | None]
    description: str = ""
    ranges: list[list[int]] | None = None
    enumerated: list[list[int]] | None = None

    def check(self, shape: tuple[int, ...]) -> None:
        """Raise ``ShapeError`` unless ``shape`` is one this input accepts."""
        declared = tuple("?" if d is None else d for d in self.shape)
        if len(shape) != len(self.shape):
            raise ShapeError(
                f"input {self.name!r}: the program declares shape {declared} "
                f"(rank {len(self.shape)}); got {tuple(shape)}"
            )
        if self.enumerated:
            if list(shape) not in self.enumerated:
                raise ShapeError(
                    f"input {self.name!r}: shape {tuple(shape)} is not one of the program's "
                    f"enumerated shapes {[tuple(s) for s in self.enumerated]}"
                )
            return
        for axis, (got, want) in enumerate(zip(shape, self.shape, strict=True)):
            if want is not None and got != want:
                raise ShapeError(
                    f"input {self.name!r}: the program declares shape {declared}; "
                    f"got {tuple(shape)} (axis {axis}: {got} != {want})"
                )
            if self.ranges and want is None:
                low, high = self.ranges[axis]
                if got < low or (high != -1 and got > high):
                    raise ShapeError(
                        f"input {self.name!r}: axis {axis} of {tuple(shape)} is outside the "
                        f"program's range [{low}, {'∞' if high == -1 else high}]"
                    )

    @property
    def flexible(self) -> bool:
        return any(d is None for d in self.shape) or bool(self.enumerated)


@dataclass
class Step:
    """One compute op. ``inputs`` maps each MIL input name to an argument:

    ``{"ref": name}`` an earlier result, a program input or a state; ``{"const": key}`` a
    stored tensor; ``{"value": literal}`` a Python literal; ``{"list": [argument, ...]}`` a
    tuple input (``concat``'s values). ``round``: per output, whether its result is rounded
    to fp16. ``blocks``: a control-flow op's nested blocks (``cond``: true, false;
    ``while_loop``: cond, body).
    """

    op: str
    name: str
    inputs: dict[str, Any]
    outputs: list[str]
    dtypes: list[str]
    shapes: list[list[int | None]]
    round: list[bool]
    blocks: list[Block] = field(default_factory=list)

    def refs(self) -> list[str]:
        """Every name this step reads: its arguments' refs and what its blocks capture."""
        found = argument_keys(self.inputs.values(), "ref")
        for block in self.blocks:
            found += block.captured
        return found

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Step:
        blocks = [Block.from_json(b) for b in data.get("blocks", [])]
        return cls(**{**data, "blocks": blocks})


@dataclass
class Block:
    """A nested block of a control-flow step: its own inputs (a loop's variables, named as
    the block names them), the outer results (and states) it reads (``captured``), its steps
    and the names of the results it returns."""

    inputs: list[str]
    input_dtypes: list[str]
    input_shapes: list[list[int | None]]
    captured: list[str]
    steps: list[Step]
    outputs: list[str]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Block:
        return cls(**{**data, "steps": [Step.from_json(s) for s in data["steps"]]})


def resolve(arg: dict[str, Any], ref: Callable[[str], Any], const: Callable[[str], Any]) -> Any:
    """A step argument's value: ``ref(name)`` for a result, ``const(key)`` for a stored
    tensor, a list element by element, a literal as it is. The graph builder, the constant
    folder and the reference interpreter differ only in ``ref`` and ``const``."""
    if "ref" in arg:
        return ref(arg["ref"])
    if "const" in arg:
        return const(arg["const"])
    if "list" in arg:
        return [resolve(a, ref, const) for a in arg["list"]]
    return arg["value"]


def argument_keys(arguments: Iterable[dict[str, Any]], kind: str) -> list[str]:
    """The names (``kind="ref"``) or stored keys (``"const"``) the arguments read, lists
    included, in order."""
    found: list[str] = []
    for arg in arguments:
        if kind in arg:
            found.append(arg[kind])
        elif "list" in arg:
            found += argument_keys(arg["list"], kind)
    return found


@dataclass
class Plan:
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    steps: list[Step]
    source: dict[str, Any] = field(default_factory=dict)  # package digest, compiler version
    # Why running N stacked batch-1 samples at once could mix them, or None (see ``rows``).
    row_hazard: str | None = None
    constants: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    format: int = PLAN_FORMAT
    # The program's state inputs (iOS18 ``state<tensor<...>>``), fixed shapes: buffers that
    # ``read_state`` / ``coreml_update_state`` steps read and write (see ``runtime.run``).
    states: list[TensorInfo] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("constants")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], constants: dict[str, Any]) -> Plan:
        return cls(
            inputs=[TensorInfo(**t) for t in data["inputs"]],
            outputs=[TensorInfo(**t) for t in data["outputs"]],
            steps=[Step.from_json(s) for s in data["steps"]],
            source=data.get("source", {}),
            row_hazard=data.get("row_hazard"),
            constants=constants,
            format=data["format"],
            states=[TensorInfo(**t) for t in data.get("states", [])],
        )

    def save(self, folder: Path) -> None:
        """Write ``plan.json`` and ``constants.pt`` into ``folder`` atomically, replacing an
        older plan (a killed writer leaves the old one or none, never half of one)."""
        import torch

        with atomic_directory(Path(folder)) as staging:
            staging.mkdir()
            # fp16-valued constants are stored as fp16 (exact), halving the cache.
            torch.save(
                {k: _compact(v) for k, v in self.constants.items()}, staging / CONSTANTS_FILE
            )
            (staging / PLAN_FILE).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, folder: Path) -> Plan:
        import torch

        folder = Path(folder)
        data = json.loads((folder / PLAN_FILE).read_text())
        if data.get("format") != PLAN_FORMAT:
            raise ValueError(
                f"{folder}: plan format {data.get('format')!r}, this executor reads "
                f"{PLAN_FORMAT}; recompile it"
            )
        stored = torch.load(folder / CONSTANTS_FILE, weights_only=True, map_location="cpu")
        constants = {k: v.float() if v.dtype == torch.float16 else v for k, v in stored.items()}
        return cls.from_json(data, constants)


def _compact(tensor: torch.Tensor) -> torch.Tensor:
    import torch

    if tensor.dtype == torch.float32:
        half = tensor.half()
        if torch.equal(half.float(), tensor):
            return half
    return tensor
