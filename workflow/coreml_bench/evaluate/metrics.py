"""Accuracy of a predictor: top-1/top-5 for classifiers, COCO mAP for detectors."""

from __future__ import annotations

from typing import Any

from ..data import DataError, DataSelection
from ..data.detection import coco_loader, coco_map, coco_results
from ..models import ARCHITECTURES, ModelSpec
from .registry import Predictor


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
    predict: Predictor, data: DataSelection, model: ModelSpec, *, progress: bool = True
) -> dict[str, Any]:
    """COCO mAP of a detector: decode each batch's output to boxes, score with pycocotools."""
    from tqdm import tqdm

    with data.kind.detection_files(data.source) as (images, annotations):
        preprocessing = model.preprocessing
        loader = coco_loader(
            images,
            annotations,
            input_size=preprocessing.crop_size,
            mean=preprocessing.mean,
            std=preprocessing.std,
            batch_size=data.batch_size,
            limit=data.limit,
        )
        categories = loader.dataset.category_ids
        if len(categories) != model.num_classes:
            raise DataError(
                f"data.evaluation.annotations {str(annotations)!r} has {len(categories)} "
                f"categories but model {model.id!r} predicts num_classes={model.num_classes}"
            )
        decode = ARCHITECTURES[model.architecture].decode
        assert decode is not None, "detection architectures register a decode function"
        detections: list[dict[str, Any]] = []
        for batch, metas in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
            output = predict(batch)
            expected = model.num_classes + 4
            if output.ndim != 4 or output.shape[1] != expected:
                # A package whose outputs are laid out differently (e.g. three separate heads)
                # must not be decoded as if it were this registry's single stacked output.
                raise ValueError(
                    f"model {model.id!r}: the program's output has shape "
                    f"{tuple(output.shape)}, but {model.architecture!r} decoding needs "
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
