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


def test_targets_put_a_unit_peak_at_each_centre_with_its_size_and_offset() -> None:
    from coreml_bench.models.centernet import encode_targets, gaussian_radius

    boxes = torch.tensor([[8.0, 12.0, 40.0, 28.0], [60.0, 60.0, 63.0, 63.0]])
    targets = encode_targets(boxes, torch.tensor([1, 0]), num_classes=2, input_size=64)
    heatmap, size, offset, mask = (targets[k] for k in ("heatmap", "size", "offset", "mask"))
    assert heatmap.shape == (2, 16, 16) and size.shape == (2, 16, 16)
    # First box: centre (24, 20) px = cell (6, 5) at stride 4; 8 × 4 cells.
    assert heatmap[1, 5, 6] == 1.0 and mask[5, 6] == 1.0
    assert size[:, 5, 6].tolist() == [8.0, 4.0]
    assert offset[:, 5, 6].tolist() == [0.0, 0.0]
    # Second box: centre (61.5, 61.5) px = (15.375, 15.375) cells: offset 0.375 in the cell.
    assert heatmap[0, 15, 15] == 1.0
    assert offset[:, 15, 15].tolist() == pytest.approx([0.375, 0.375])
    assert int(mask.sum()) == 2 and int((heatmap == 1).sum()) == 2
    # The Gaussian falls off around the peak and stays inside its radius.
    radius = int(gaussian_radius(4, 8))
    assert 0 < heatmap[1, 5, 7] < 1 and heatmap[1, 5, 6 + radius + 1] == 0
    assert 0 < gaussian_radius(10, 10) < 10


def test_the_loss_is_lowest_for_the_targets_themselves() -> None:
    from coreml_bench.models.centernet import centernet_loss, encode_targets

    boxes = torch.tensor([[8.0, 12.0, 40.0, 28.0]])
    single = encode_targets(boxes, torch.tensor([0]), num_classes=1, input_size=64)
    targets = {k: v[None] for k, v in single.items()}
    perfect = torch.cat([targets["heatmap"], targets["size"], targets["offset"]], dim=1)
    wrong_size = perfect.clone()
    wrong_size[:, 1:3] += 2.0
    blank = torch.cat([torch.full_like(targets["heatmap"], 0.1), perfect[:, 1:]], dim=1)
    best = centernet_loss(perfect, targets)
    assert torch.isfinite(best) and best < 0.01
    # Size off by 2 cells in w and h: 0.1 × (2 + 2) more.
    assert float(centernet_loss(wrong_size, targets)) == pytest.approx(float(best) + 0.4, abs=1e-4)
    assert centernet_loss(blank, targets) > 1.0  # the missed centre costs the focal term
