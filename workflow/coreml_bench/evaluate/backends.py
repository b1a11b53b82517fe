"""The evaluation backends, one registry entry each.

``coreml`` runs ``MLModel.predict`` (macOS only). ``mil-torch`` (the default elsewhere)
executes the package's ML program itself op by op with torch (``coreml_bench.executor``),
activation quantization included. ``weights-torch`` loads the weights stored in the package
(decompressed, BatchNorm folded as the converter folded it) into the torch graph of the same
architecture; it refuses programs it cannot mirror (kept BatchNorm ops, activation
quantization).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..executor import ProgramExecutor
from ..mlpackage.files import load_spec, op_type_counts, open_package
from ..mlpackage.program import WeightMappingError
from ..models import ModelSpec, load_model
from .registry import EVALUATORS, Evaluator, Predictor
from .weights_torch import load_package_weights

# Ops that the weights mapping cannot mirror in the architecture's torch graph.
_NOT_MIRRORED = {
    "batch_norm": "BatchNorm kept as an op (torch-side compression keeps it unfolded)",
    "quantize": "activation quantization",
}


def torch_model_with_package_weights(
    package: Path, model: ModelSpec, weights: Path, stored: list[Any] | None = None
) -> Any:
    """The architecture's torch graph carrying the package's (decompressed) weights.

    ``stored``: the package's weights as ``read_package_weights`` gives them, if already read.
    """

    network = load_model(model.architecture, weights, model.num_classes)
    return load_package_weights(network, package, stored=stored).eval()


def _weights_torch_predictor(
    package: Path, model: ModelSpec, weights: Path | None, device: str
) -> Predictor:
    import torch

    if weights is None:
        raise ValueError("evaluation.backend 'weights-torch' needs the model's checkpoint")
    counts = op_type_counts(load_spec(package))
    found = [f"{counts[op]} {op} op(s): {why}" for op, why in _NOT_MIRRORED.items() if op in counts]
    if found:
        raise WeightMappingError(
            f"{package}: backend 'weights-torch' cannot measure this program faithfully "
            f"({'; '.join(found)}); use evaluation.backend 'mil-torch' (or 'auto')"
        )
    network = torch_model_with_package_weights(package, model, weights)

    def predict(batch: Any) -> Any:
        with torch.no_grad():
            return network(batch)

    return predict


def _mil_torch_predictor(
    package: Path, model: ModelSpec, weights: Path | None, device: str
) -> Predictor:
    return ProgramExecutor(package, device=device)


def coreml_predictor(package: Path, compute_units: str = "ALL") -> Predictor:
    """Batch predictions through Core ML itself, one image at a time (fixed batch-1 input)."""
    import coremltools as ct
    import numpy as np
    import torch

    mlmodel = open_package(package, compute_units=getattr(ct.ComputeUnit, compute_units))
    # The package's own names: published packages need not use this workflow's image/logits.
    description = mlmodel.get_spec().description
    input_name, output_name = description.input[0].name, description.output[0].name

    def predict(batch: Any) -> Any:
        outputs = [
            mlmodel.predict({input_name: sample[None].numpy().astype(np.float32)})[output_name]
            for sample in batch
        ]
        return torch.from_numpy(np.concatenate(outputs, axis=0).astype(np.float32))

    return predict


EVALUATORS.add(
    "weights-torch",
    Evaluator(
        _weights_torch_predictor,
        "package weights decompressed into the torch graph (BatchNorm folded), run by torch",
        needs_checkpoint=True,
    ),
)
EVALUATORS.add(
    "mil-torch",
    Evaluator(
        _mil_torch_predictor,
        "the package's ML program executed op by op with torch (fp16 activations, "
        "decompressed weights, activation quantization)",
        uses_device=True,
        runs_program=True,
    ),
)
EVALUATORS.add(
    "coreml",
    Evaluator(
        lambda package, model, weights, device: coreml_predictor(package),
        "Core ML MLModel.predict (compute units ALL)",
        platforms=("darwin",),
    ),
)
