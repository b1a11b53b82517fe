"""Before a run: which weights a Core ML-side setting will leave dense, and how many bytes.

coremltools skips a weight that is too small (``weight_threshold``) or whose channels its
blocks do not divide (``group_size``, ``block_size``): those skips lower the compression
ratio. Each algorithm's params say why they would skip a weight (``skip_reason``, following
coremltools' documented rules); this module applies them to the architecture's conv/linear
weights, built with torch. An estimate: the manifest's ``weight_encodings`` is the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FP16_BYTES = 2


@dataclass(frozen=True)
class WeightShape:
    """One conv/linear weight as the converted program holds it (BatchNorm folded)."""

    name: str
    shape: tuple[int, ...]
    output_axis: int = 0  # conv_transpose keeps output channels on axis 1

    @property
    def size(self) -> int:
        total = 1
        for dim in self.shape:
            total *= dim
        return total

    @property
    def output_channels(self) -> int:
        return self.shape[self.output_axis]

    @property
    def input_channels(self) -> int:
        return self.shape[1 - self.output_axis]


def weight_shapes(architecture: str, num_classes: int) -> list[WeightShape]:
    """The conv/linear weights of an architecture (torch: imported here)."""
    import torch

    from ..models import build_model, weight_module_types

    shapes = []
    for name, module in build_model(architecture, num_classes).named_modules():
        if isinstance(module, weight_module_types()):
            transposed = isinstance(module, torch.nn.modules.conv._ConvTransposeNd)
            shapes.append(WeightShape(name, tuple(module.weight.shape), 1 if transposed else 0))
    return shapes


@dataclass(frozen=True)
class DenseEstimate:
    dense: list[tuple[WeightShape, str]]
    total_bytes: int

    @property
    def dense_bytes(self) -> int:
        return sum(weight.size for weight, _ in self.dense) * FP16_BYTES

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for _, reason in self.dense:
            key = reason.split(" ", 1)[1] if reason[0].isdigit() else reason
            reasons[key] = reasons.get(key, 0) + 1
        why = "; ".join(f"{count} × {reason}" for reason, count in reasons.items())
        return (
            f"{len(self.dense)} weight tensor(s) stay dense, {self.dense_bytes / 1e6:.2f} MB of "
            f"{self.total_bytes / 1e6:.2f} MB ({100 * self.dense_bytes / self.total_bytes:.1f} %)"
            + (f": {why}" if why else "")
        )


def estimate_dense(params: Any, shapes: list[WeightShape]) -> DenseEstimate | None:
    """The weights ``params`` leaves dense, or None if its algorithm has no such rules."""
    skip_reason = getattr(params, "skip_reason", None)
    if skip_reason is None:
        return None
    dense = [(weight, reason) for weight in shapes if (reason := skip_reason(weight))]
    total = sum(weight.size for weight in shapes) * FP16_BYTES
    return DenseEstimate(dense, total)
