"""CenterNet with a ResNet backbone ("Objects as Points", Zhou et al. 2019), as the seeds use it.

The network is the torchvision ResNet34 trunk (up to ``layer4``, stride 32), three
transposed-convolution upsampling stages back to stride 4, and three heads: a per-class
centre heatmap, box width/height and the sub-pixel centre offset. ``forward`` returns one
tensor, ``[sigmoid(heatmap), size, offset]`` stacked on the channel axis, so the Core ML
program has a single output that every evaluator reads the same way; ``decode`` turns it
into boxes (3×3 max-pool peak extraction, top-K, boxes in input pixels).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

OUTPUT_STRIDE = 4
UPSAMPLE_CHANNELS = (256, 128, 64)
HEAD_CHANNELS = 64
# CenterNet's focal-loss prior: heatmap bias so sigmoid starts near 0.1 (paper, section 4).
HEATMAP_PRIOR_BIAS = -2.19


def build_centernet(num_classes: int, backbone: str = "resnet34") -> torch.nn.Module:
    import torchvision
    from torch import nn

    class CenterNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            trunk = torchvision.models.get_model(backbone, weights=None)
            # Named like torchvision's ResNet so its checkpoint loads into ``backbone.*``.
            self.backbone = nn.Sequential()
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
                self.backbone.add_module(name, getattr(trunk, name))
            channels = trunk.fc.in_features
            layers: list[nn.Module] = []
            for out in UPSAMPLE_CHANNELS:
                layers += [
                    nn.Conv2d(channels, out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True),
                    nn.ConvTranspose2d(out, out, 4, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True),
                ]
                channels = out
            self.upsample = nn.Sequential(*layers)
            self.heatmap = self._head(channels, num_classes)
            self.size = self._head(channels, 2)
            self.offset = self._head(channels, 2)
            nn.init.constant_(self.heatmap[-1].bias, HEATMAP_PRIOR_BIAS)

        @staticmethod
        def _head(channels: int, out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(channels, HEAD_CHANNELS, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(HEAD_CHANNELS, out, 1),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            import torch

            features = self.upsample(self.backbone(x))
            return torch.cat(
                [self.heatmap(features).sigmoid(), self.size(features), self.offset(features)],
                dim=1,
            )

    return CenterNet()


def decode(output: torch.Tensor, *, top_k: int = 100, stride: int = OUTPUT_STRIDE) -> list[dict]:
    """Boxes per image from the stacked output (N, C+4, H, W), in input-image pixels.

    A heatmap cell is a detection when it is the maximum of its 3×3 neighbourhood (CenterNet's
    NMS substitute); the ``top_k`` highest over all classes are kept. Each dict holds
    ``boxes`` (K, 4) as x1, y1, x2, y2, ``scores`` (K,) and ``labels`` (K,) class channels.
    """
    import torch
    import torch.nn.functional as F

    classes = output.shape[1] - 4
    if classes < 1:
        raise ValueError(f"CenterNet output needs num_classes + 4 channels, got {output.shape[1]}")
    heatmap, size, offset = output[:, :classes], output[:, classes:-2], output[:, -2:]
    peaks = heatmap * (F.max_pool2d(heatmap, 3, stride=1, padding=1) == heatmap)
    n, _, height, width = heatmap.shape
    scores, flat = peaks.reshape(n, -1).topk(min(top_k, peaks[0].numel()), dim=1)
    labels = torch.div(flat, height * width, rounding_mode="floor")
    cell = flat % (height * width)
    ys, xs = torch.div(cell, width, rounding_mode="floor"), cell % width
    results = []
    for i in range(n):
        w, h = size[i, 0].reshape(-1)[cell[i]], size[i, 1].reshape(-1)[cell[i]]
        cx = xs[i].float() + offset[i, 0].reshape(-1)[cell[i]]
        cy = ys[i].float() + offset[i, 1].reshape(-1)[cell[i]]
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1) * stride
        results.append({"boxes": boxes, "scores": scores[i], "labels": labels[i]})
    return results


# ------------------------------------------------------------------------------- training
# Loss weights of the paper (section 4): focal heatmap 1, size 0.1, offset 1.
SIZE_LOSS_WEIGHT = 0.1
OFFSET_LOSS_WEIGHT = 1.0
# CornerNet's penalty-reduced focal loss exponents, which CenterNet reuses.
FOCAL_ALPHA = 2
FOCAL_BETA = 4
# The IoU a box shifted within the Gaussian's radius still has with the ground truth.
MIN_OVERLAP = 0.7


def gaussian_radius(height: float, width: float, min_overlap: float = MIN_OVERLAP) -> float:
    """The largest corner shift that keeps IoU ≥ ``min_overlap`` (CornerNet's three cases).

    Solves the quadratic of each case (both corners inside, both outside, one each) and takes
    the smallest root, as the CenterNet reference does.
    """
    import math

    def root(a: float, b: float, c: float) -> float:
        return (b + math.sqrt(max(b * b - 4 * a * c, 0.0))) / 2

    r1 = root(1, height + width, width * height * (1 - min_overlap) / (1 + min_overlap))
    r2 = root(4, 2 * (height + width), (1 - min_overlap) * width * height)
    r3 = root(
        4 * min_overlap,
        -2 * min_overlap * (height + width),
        (min_overlap - 1) * width * height,
    )
    return min(r1, r2, r3)


def encode_targets(
    boxes: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int,
    input_size: int,
    stride: int = OUTPUT_STRIDE,
) -> dict[str, torch.Tensor]:
    """Dense training targets for one image from boxes (K, 4) x1 y1 x2 y2 in input pixels.

    ``heatmap`` (C, H, W) holds a Gaussian per object at its centre cell (element-wise max where
    objects overlap); ``size`` and ``offset`` (2, H, W) hold the box size (output cells) and the
    sub-cell centre offset at each centre, where ``mask`` (H, W) is 1.
    """
    import math

    import torch

    side = input_size // stride
    heatmap = torch.zeros(num_classes, side, side)
    size = torch.zeros(2, side, side)
    offset = torch.zeros(2, side, side)
    mask = torch.zeros(side, side)
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    for box, label in zip(boxes.tolist(), labels.tolist(), strict=True):
        x1, y1, x2, y2 = (v / stride for v in box)
        width, height = x2 - x1, y2 - y1
        if width <= 0 or height <= 0:
            continue
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        ix, iy = min(int(cx), side - 1), min(int(cy), side - 1)
        radius = max(0, int(gaussian_radius(math.ceil(height), math.ceil(width))))
        sigma = (2 * radius + 1) / 6
        blob = torch.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma * sigma))
        blob[(xs - ix).abs() > radius] = 0
        blob[(ys - iy).abs() > radius] = 0
        heatmap[label] = torch.maximum(heatmap[label], blob)
        size[:, iy, ix] = torch.tensor([width, height])
        offset[:, iy, ix] = torch.tensor([cx - ix, cy - iy])
        mask[iy, ix] = 1.0
    return {"heatmap": heatmap, "size": size, "offset": offset, "mask": mask}


def centernet_loss(output: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
    """Focal heatmap loss + 0.1 × L1 size + L1 offset, each normalised by the object count.

    ``output`` is the network's stacked (N, C + 4, H, W) tensor (heatmap already a sigmoid);
    ``targets`` are :func:`encode_targets`' tensors stacked over the batch.
    """
    import torch

    classes = output.shape[1] - 4
    # fp32 for the logs and powers: under mixed precision fp16 underflows near 0 and 1.
    predicted = output[:, :classes].float().clamp(1e-4, 1 - 1e-4)
    size, offset = output[:, classes:-2].float(), output[:, -2:].float()
    heatmap = targets["heatmap"]
    positive = heatmap.eq(1).float()
    negative_weight = (1 - heatmap).pow(FOCAL_BETA)
    positive_loss = torch.log(predicted) * (1 - predicted).pow(FOCAL_ALPHA) * positive
    negative_loss = (
        torch.log(1 - predicted) * predicted.pow(FOCAL_ALPHA) * negative_weight * (1 - positive)
    )
    objects = positive.sum().clamp(min=1.0)
    focal = -(positive_loss.sum() + negative_loss.sum()) / objects
    mask = targets["mask"][:, None]
    centres = mask.sum().clamp(min=1.0)
    size_loss = ((size - targets["size"]).abs() * mask).sum() / centres
    offset_loss = ((offset - targets["offset"]).abs() * mask).sum() / centres
    return focal + SIZE_LOSS_WEIGHT * size_loss + OFFSET_LOSS_WEIGHT * offset_loss
