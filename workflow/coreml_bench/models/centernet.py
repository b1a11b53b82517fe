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
