"""CenterNet decoding: ground truth encoded as the network's output decodes to the same boxes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from coreml_bench.data.detection import category_ids, coco_map, coco_results, deepforest_sample
from coreml_bench.models.centernet import OUTPUT_STRIDE, decode
from helpers import ROOT


def _encode(boxes: list[list[float]], labels: list[int], size: int, classes: int) -> torch.Tensor:
    """The CenterNet output that exactly describes ``boxes`` (x1, y1, x2, y2 input pixels)."""
    cells = size // OUTPUT_STRIDE
    output = torch.zeros(1, classes + 4, cells, cells)
    for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True):
        cx, cy = (x1 + x2) / 2 / OUTPUT_STRIDE, (y1 + y2) / 2 / OUTPUT_STRIDE
        ix, iy = int(cx), int(cy)
        output[0, label, iy, ix] = 0.9
        output[0, classes:, iy, ix] = torch.tensor(
            [(x2 - x1) / OUTPUT_STRIDE, (y2 - y1) / OUTPUT_STRIDE, cx - ix, cy - iy]
        )
    return output


def test_centernet_decoding_gives_boxes_in_image_coordinates(tmp_path: Path) -> None:
    """Ground truth encoded as heatmap/size/offset, decoded and scored by pycocotools → 1.0."""
    _images, annotations = deepforest_sample(ROOT / ".venv/fixtures", tmp_path)
    data = json.loads(annotations.read_text())
    categories = category_ids(annotations)
    size = 512
    detections = []
    for image in data["images"]:
        sx, sy = image["width"] / size, image["height"] / size
        boxes = [
            [x / sx, y / sy, (x + w) / sx, (y + h) / sy]
            for a in data["annotations"]
            if a["image_id"] == image["id"]
            for x, y, w, h in [a["bbox"]]
        ]
        output = _encode(boxes, [0] * len(boxes), size, classes=1)
        (decoded,) = decode(output, top_k=100)
        meta = {"image_id": image["id"], "scale": (sx, sy)}
        kept = decoded["scores"] > 0
        assert int(kept.sum()) == len(boxes)  # every centre is its own 3×3 peak here
        detections += coco_results(
            meta, decoded["boxes"][kept], decoded["scores"][kept], decoded["labels"][kept],
            categories,
        )  # fmt: skip
    scores = coco_map(annotations, detections)
    assert scores["map"] == pytest.approx(1.0)
