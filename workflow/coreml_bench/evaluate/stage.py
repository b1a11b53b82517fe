"""Stage evaluate: accuracy of the *compressed Core ML artifact*, through the evaluator
registry. Every record says which backend produced it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..data import DataSelection, evaluation_loader
from ..fingerprint import record_provenance
from ..io import write_json_atomic
from ..models import ModelSpec
from ..provenance import StageTimer, host_info, package_versions
from .metrics import accuracy, detection_map
from .registry import resolve_evaluator

log = logging.getLogger(__name__)


def evaluate_package(
    *,
    package: Path,
    weights: Path | None,
    model: ModelSpec,
    data: DataSelection,
    backend: str,
    output: Path,
    context: dict[str, Any],
    device: str = "cpu",
) -> dict[str, Any]:
    name, evaluator = resolve_evaluator(backend)
    if weights is None and evaluator.needs_checkpoint:
        raise ValueError(f"evaluation.backend {name!r} needs the model's checkpoint")
    timer = StageTimer()
    with timer.section("load"):
        predict = evaluator.make_predictor(package, model, weights, device)
    log.info("evaluating %s with backend %s", package, name)
    with timer.section("evaluate"):
        if model.task == "detection":
            metrics = detection_map(predict, data, model)
            predictions: list[Any] = []
        else:
            loader = evaluation_loader(data, model.preprocessing)
            result = accuracy(predict, loader)
            predictions = result.pop("predictions")
            metrics = {"metric": "Top-1 (%)", "accuracy": result["top1"], **result}
    record = {
        "stage": "evaluate",
        **context,
        "backend": name,
        "backend_description": evaluator.description,
        "device": device if evaluator.uses_device else None,
        "dataset": {**data.source.model_dump(mode="json"), "n_images": metrics["n_images"]},
        "metrics": metrics,
        "predictions": predictions,
        "host": host_info(),
        "timing": timer.summary(),
        "versions": package_versions(),
        "provenance": record_provenance("evaluate"),
    }
    write_json_atomic(output, record)
    return record
