"""The compression-algorithm registry: Core ML-side (on the fp16 package) and torch-side
(on the fp32 model before conversion) algorithms, each entry with its parameter model, its
implementation and how tables and plots show it.

The config's discriminated union of compression settings is built from this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..registry import Registry
from ..schema_base import StrictModel

Workflow = Literal["n/a", "Post Training", "Calibration", "Training Time"]
AlgorithmKind = Literal["coreml", "torch", "none"]
CompressInput = Literal["selection", "calibration"]


@dataclass(frozen=True)
class Algorithm:
    """One compression algorithm.

    ``kind`` says where it acts: "coreml" entries give ``apply(mlmodel, params) -> mlmodel``
    (rule compress); "torch" entries give ``compress_torch(job) -> finalized torch model``
    (rule compress_torch, ``compress.torch_side.TorchCompressionJob``); "none" is the fp16
    baseline itself (no job). ``conversion_method`` forces a torch → Core ML conversion
    method for its output (e.g. trace for activation-quantized models). ``marker`` is the
    algorithm's matplotlib marker in the Pareto plot. ``inputs`` (Core ML-side only): what
    else ``apply(mlmodel, params, **inputs)`` reads.
    """

    params: type[StrictModel]
    display_name: str
    workflow: Workflow
    kind: AlgorithmKind
    marker: str
    apply: Callable[[Any, Any], Any] | None = None
    compress_torch: Callable[[Any], Any] | None = None
    conversion_method: Literal["export", "trace"] | None = None
    # Named inputs the compress job gives ``apply`` as keywords, beyond the fp16 package:
    # "selection" (the searched per-op config file), "calibration" (the calibration batches
    # of the sensitivity split, run through the executor).
    inputs: tuple[CompressInput, ...] = ()

    def __post_init__(self) -> None:
        needed = {"coreml": "apply", "torch": "compress_torch"}
        for kind, name in needed.items():
            given = getattr(self, name) is not None
            if given != (self.kind == kind):
                state = "needs" if self.kind == kind else "must not have"
                raise ValueError(f"{self.kind!r} algorithm {self.params.__name__} {state} {name}")
        if self.inputs and self.kind != "coreml":
            raise ValueError(f"only Core ML-side algorithms take inputs: {self.params.__name__}")

    @property
    def fine_tunes(self) -> bool:
        """Trains from the fp32 checkpoint with a recipe (its params have ``recipe``)."""
        return "recipe" in self.params.model_fields

    @property
    def is_baseline(self) -> bool:
        return self.kind == "none"

    def legend_label(self) -> str:
        """Post-training and training-time variants of one method share a display name."""
        return "Float16" if self.is_baseline else f"{self.display_name} ({self.workflow.lower()})"


ALGORITHMS: Registry[Algorithm] = Registry("compression algorithm")
