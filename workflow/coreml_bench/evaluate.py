"""Stage 4: accuracy of the *compressed Core ML artifact*, through an evaluator registry.

``coreml`` runs ``MLModel.predict`` (macOS only). ``mil-torch`` (the default elsewhere) executes
the package's ML program itself op by op with torch (``coreml_bench.mil_executor``), activation
quantization included. ``weights-torch`` loads the weights stored in the package (decompressed,
BatchNorm folded as the converter folded it) into the torch graph of the same architecture; it
refuses programs it cannot mirror (kept BatchNorm ops, activation quantization). Every record
says which backend produced it.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .registry import Registry, require_platform

log = logging.getLogger(__name__)

Predictor = Callable[[Any], Any]  # batch tensor (N,3,H,W) -> logits tensor (N,C)


@dataclass(frozen=True)
class Evaluator:
    # (package, resolved model config, checkpoint or None, torch device) -> predictor
    make_predictor: Callable[[Path, dict[str, Any], Path | None, str], Predictor]
    description: str
    platforms: tuple[str, ...] | None = None  # sys.platform values; None: anywhere


EVALUATORS: Registry[Evaluator] = Registry("evaluation backend")


def torch_model_with_package_weights(
    package: Path, model_cfg: dict[str, Any], weights: Path, stored: list[Any] | None = None
) -> Any:
    """The architecture's torch graph carrying the package's (decompressed) weights.

    ``stored``: the package's weights as ``read_package_weights`` gives them, if already read.
    """
    from .models import load_model
    from .weights_roundtrip import load_package_weights

    model = load_model(model_cfg["architecture"], weights, model_cfg["num_classes"])
    return load_package_weights(model, package, model_cfg["input_size"], stored).eval()


# Ops that the weights mapping cannot mirror in the architecture's torch graph.
_NOT_MIRRORED = {
    "batch_norm": "BatchNorm kept as an op (torch-side compression keeps it unfolded)",
    "quantize": "activation quantization",
}


def _weights_torch_predictor(
    package: Path, model_cfg: dict[str, Any], weights: Path, device: str
) -> Predictor:
    import torch

    from .mlpackage import load_spec, op_type_counts

    counts = op_type_counts(load_spec(package))
    found = [f"{counts[op]} {op} op(s): {why}" for op, why in _NOT_MIRRORED.items() if op in counts]
    if found:
        from .weights_roundtrip import WeightMappingError

        raise WeightMappingError(
            f"{package}: backend 'weights-torch' cannot measure this program faithfully "
            f"({'; '.join(found)}); use evaluation.backend 'mil-torch' (or 'auto')"
        )
    model = torch_model_with_package_weights(package, model_cfg, weights)

    def predict(batch: Any) -> Any:
        with torch.no_grad():
            return model(batch)

    return predict


def coreml_predictor(package: Path, compute_units: str = "ALL") -> Predictor:
    """Batch predictions through Core ML itself, one image at a time (fixed batch-1 input)."""
    import coremltools as ct
    import numpy as np
    import torch

    from .mlpackage import open_package

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
    ),
)


def _mil_torch_predictor(
    package: Path, model_cfg: dict[str, Any], weights: Path | None, device: str
) -> Predictor:
    from .mil_executor import ProgramExecutor

    return ProgramExecutor(package, device=device)


EVALUATORS.add(
    "mil-torch",
    Evaluator(
        _mil_torch_predictor,
        "the package's ML program executed op by op with torch (fp16 activations, "
        "decompressed weights, activation quantization)",
    ),
)
EVALUATORS.add(
    "coreml",
    Evaluator(
        lambda package, model_cfg, weights, device: coreml_predictor(package),
        "Core ML MLModel.predict (compute units ALL)",
        platforms=("darwin",),
    ),
)


def resolve_backend(requested: str) -> str:
    """'auto' picks Core ML on macOS and the program executor elsewhere."""
    if requested != "auto":
        return requested
    return "coreml" if sys.platform == "darwin" else "mil-torch"


def accuracy(predict: Predictor, loader: Any, *, progress: bool = True) -> dict[str, Any]:
    """Top-1/top-5 over a loader, plus each image's top-1 class (for agreement checks)."""
    import torch
    from tqdm import tqdm

    correct1 = correct5 = total = 0
    predictions: list[int] = []
    for images, labels in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
        logits = predict(images)
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        labels = torch.as_tensor(labels)
        correct1 += int((top5[:, 0] == labels).sum())
        correct5 += int((top5 == labels[:, None]).any(dim=1).sum())
        total += len(labels)
        predictions += top5[:, 0].tolist()
    return {
        "top1": round(100.0 * correct1 / total, 4),
        "top5": round(100.0 * correct5 / total, 4),
        "n_images": total,
        "predictions": predictions,
    }


def detection_map(
    predict: Predictor,
    data_cfg: dict[str, Any],
    model_cfg: dict[str, Any],
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """COCO mAP of a detector: decode each batch's output to boxes, score with pycocotools."""
    from tqdm import tqdm

    from .data import DataError
    from .detection import category_ids, coco_loader, coco_map, coco_results, deepforest_sample
    from .models import ARCHITECTURES

    evaluation = data_cfg["evaluation"]
    if evaluation["kind"] == "deepforest_sample":
        with tempfile.TemporaryDirectory(prefix="deepforest-") as tmp:
            images, annotations = deepforest_sample(Path(evaluation["wheel_dir"]), Path(tmp))
            coco = {"kind": "coco", "images": str(images), "annotations": str(annotations)}
            return detection_map(
                predict, {**data_cfg, "evaluation": coco}, model_cfg, progress=progress
            )
    annotations = Path(evaluation["annotations"])
    preprocessing = model_cfg["preprocessing"]
    categories = category_ids(annotations)
    if len(categories) != model_cfg["num_classes"]:
        raise DataError(
            f"data.evaluation.annotations {str(annotations)!r} has {len(categories)} categories "
            f"but model {model_cfg['id']!r} predicts num_classes={model_cfg['num_classes']}"
        )
    loader = coco_loader(
        Path(evaluation["images"]),
        annotations,
        input_size=preprocessing["crop_size"],
        mean=preprocessing["mean"],
        std=preprocessing["std"],
        batch_size=data_cfg["batch_size"],
        limit=data_cfg.get("limit"),
    )
    decode = ARCHITECTURES[model_cfg["architecture"]].decode
    assert decode is not None, "detection architectures register a decode function"
    detections: list[dict[str, Any]] = []
    for images, metas in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
        output = predict(images)
        expected = model_cfg["num_classes"] + 4
        if output.ndim != 4 or output.shape[1] != expected:
            # A package whose outputs are laid out differently (e.g. three separate heads)
            # must not be decoded as if it were this registry's single stacked output.
            raise ValueError(
                f"model {model_cfg['id']!r}: the program's output has shape "
                f"{tuple(output.shape)}, but {model_cfg['architecture']!r} decoding needs "
                f"(N, num_classes + 4 = {expected}, H, W): heatmap, size and offset stacked"
            )
        for decoded, meta in zip(decode(output), metas, strict=True):
            detections += coco_results(
                meta, decoded["boxes"], decoded["scores"], decoded["labels"], categories
            )
    # Score only the images evaluated (data.limit may select a subset).
    scores = coco_map(annotations, detections, image_ids=loader.dataset.image_ids)
    return {
        "metric": "mAP@[.5:.95] (%)",
        "accuracy": round(100.0 * scores["map"], 4),
        **scores,
        "n_images": scores["n_images"],
    }


def evaluate_package(
    *,
    package: Path,
    weights: Path | None,
    model_cfg: dict[str, Any],
    data_cfg: dict[str, Any],
    backend: str,
    output: Path,
    context: dict[str, Any],
    device: str = "cpu",
) -> dict[str, Any]:
    from .data import evaluation_loader
    from .manifest import StageTimer, host_info, package_versions, write_json_atomic

    name = resolve_backend(backend)
    evaluator = EVALUATORS[name]
    require_platform("evaluation backend", name, evaluator.platforms, "mil-torch")
    timer = StageTimer()
    if weights is None and name == "weights-torch":
        raise ValueError("evaluation.backend 'weights-torch' needs the model's checkpoint")
    detection = model_cfg.get("task", "classification") == "detection"
    with timer.section("load"):
        predict = evaluator.make_predictor(package, model_cfg, weights, device)
    log.info("evaluating %s with backend %s", package, name)
    with timer.section("evaluate"):
        if detection:
            metrics = detection_map(predict, data_cfg, model_cfg)
            predictions: list[Any] = []
        else:
            loader = evaluation_loader(data_cfg, model_cfg["preprocessing"])
            result = accuracy(predict, loader)
            predictions = result.pop("predictions")
            metrics = {"metric": "Top-1 (%)", "accuracy": result["top1"], **result}
    record = {
        "stage": "evaluate",
        **context,
        "backend": name,
        "backend_description": evaluator.description,
        "device": device if name == "mil-torch" else None,
        "dataset": {**data_cfg["evaluation"], "n_images": metrics["n_images"]},
        "metrics": metrics,
        "predictions": predictions,
        "host": host_info(),
        "timing": timer.summary(),
        "versions": package_versions(),
    }
    write_json_atomic(output, record)
    return record
