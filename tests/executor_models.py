"""Networks beyond the model registry, for the program executor: seeded random weights,
converted the way ``coreml_bench.convert.to_coreml`` converts (torch.export → fp16 ML
program), run through ``CompiledProgram`` and compared with torch's own fp32 answer.

``MODELS`` maps a name to a builder returning a ``Network`` (the eval-mode module, its
example inputs by name, and its output names); ``check_network`` converts, runs and compares
one. ``python tests/executor_models.py [name ...]`` prints, per network, what the executor
refuses (every missing op/mode the ``UnsupportedOpError`` names) or how far it is from torch.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

# The relative part of the fp16 tolerance: fp16 weights and activations, against fp32 torch.
RELATIVE_TOLERANCE = 0.02
# The absolute part: this many times the drift of torch's own fp16 run of the same network.
DRIFT_FACTOR = 3.0


@dataclass
class Network:
    """A torch module with example inputs (by name, in forward's order) and output names."""

    module: torch.nn.Module
    inputs: dict[str, torch.Tensor]
    outputs: list[str]
    classifier: bool = False  # the (first) output is class logits on axis 1: compare top-1
    method: str = "export"  # torch.export, as to_coreml does; "trace" where export fails
    # Flexible shapes: per input, a ct.Shape/EnumeratedShapes factory; None → fixed shapes.
    flexible: dict[str, Callable[[], Any]] | None = None
    # Further input sets (other shapes) to run a flexible program at.
    more_inputs: list[dict[str, torch.Tensor]] = field(default_factory=list)


@dataclass
class Comparison:
    """How one output of the executor compares with torch's fp32 answer."""

    name: str
    shape: tuple[int, ...]
    max_abs_diff: float
    scale: float  # max |value| of torch's fp32 output
    fp16_drift: float | None  # max |Δ| of torch's own fp16 run (None where it cannot run)
    tolerance: float
    top1_mismatches: int = 0  # samples whose top-1 class differs outside a near-tie

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.top1_mismatches == 0

    def __str__(self) -> str:
        drift = "n/a" if self.fp16_drift is None else f"{self.fp16_drift:.3g}"
        return (
            f"{self.name}{list(self.shape)}: max|Δ| {self.max_abs_diff:.3g} / scale "
            f"{self.scale:.3g} = {self.max_abs_diff / max(self.scale, 1e-30):.2e} "
            f"(torch fp16 drift {drift}, tolerance {self.tolerance:.3g}, "
            f"top-1 mismatches {self.top1_mismatches})"
        )


def _as_tuple(result: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(result, torch.Tensor):
        return (result,)
    return tuple(result)


def torch_outputs(network: Network, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        return _as_tuple(network.module(*inputs.values()))


def torch_fp16_outputs(
    network: Network, inputs: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, ...] | None:
    """Torch's own fp16 run on CPU (weights and inputs halved), or None where an op has no
    fp16 CPU kernel."""
    halved = copy.deepcopy(network.module).half()
    try:
        with torch.no_grad():
            result = _as_tuple(halved(*(x.half() for x in inputs.values())))
    except (RuntimeError, NotImplementedError, TypeError):
        return None
    return tuple(r.float() for r in result)


def convert(network: Network) -> Any:
    """The fp16 ML program of ``network``, converted as ``to_coreml`` converts, but with the
    network's own input/output names (and flexible shapes where it declares them)."""
    import coremltools as ct

    module = network.module.eval()
    example = tuple(network.inputs.values())
    with torch.no_grad():
        if network.method == "export":
            program = torch.export.export(module, example).run_decompositions({})
        else:
            program = torch.jit.trace(module, example)
    flexible = network.flexible or {}
    inputs = [
        ct.TensorType(name=name, shape=flexible[name]() if name in flexible else x.shape)
        for name, x in network.inputs.items()
    ]
    return ct.convert(
        program,
        inputs=inputs,
        outputs=[ct.TensorType(name=name) for name in network.outputs],
        convert_to="mlprogram",
        compute_precision=ct.precision.FLOAT16,
        minimum_deployment_target=ct.target.iOS18,
    )


def compare(
    name: str,
    reference: torch.Tensor,
    ours: torch.Tensor,
    fp16: torch.Tensor | None,
    classifier: bool,
) -> Comparison:
    reference, ours = reference.float(), ours.float()
    if tuple(ours.shape) != tuple(reference.shape):
        raise AssertionError(
            f"{name}: executor shape {tuple(ours.shape)} != torch {tuple(reference.shape)}"
        )
    diff = float((reference - ours).abs().max())
    scale = float(reference.abs().max())
    drift = None
    if fp16 is not None and torch.isfinite(fp16).all():
        drift = float((reference - fp16).abs().max())
    tolerance = max(RELATIVE_TOLERANCE * scale, DRIFT_FACTOR * (drift or 0.0))
    mismatches = 0
    if classifier:
        flat = reference.reshape(reference.shape[0], reference.shape[1], -1)
        top2 = flat.topk(2, dim=1).values  # (N, 2, positions)
        near_tie = (top2[:, 0] - top2[:, 1]) <= diff
        differs = flat.argmax(1) != ours.reshape(flat.shape).argmax(1)
        mismatches = int((differs & ~near_tie).sum())
    return Comparison(name, tuple(reference.shape), diff, scale, drift, tolerance, mismatches)


def run_package(package: Path, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    from coreml_bench.executor import CompiledProgram

    return CompiledProgram.from_package(package).run(**inputs)


def check_network(network: Network, folder: Path, name: str = "model") -> list[Comparison]:
    """Convert, save under ``folder``, run every input set through the executor by name and
    compare each output with torch. Raises UnsupportedOpError where the executor refuses."""
    from coreml_bench.executor import CompiledProgram

    package = Path(folder) / f"{name}.mlpackage"
    convert(network).save(str(package))
    program = CompiledProgram.from_package(package)
    assert [i.name for i in program.inputs] == list(network.inputs)
    assert [o.name for o in program.outputs] == network.outputs
    comparisons = []
    for inputs in [network.inputs, *network.more_inputs]:
        ours = program.run(**inputs)
        assert list(ours) == network.outputs
        reference = torch_outputs(network, inputs)
        fp16 = torch_fp16_outputs(network, inputs)
        for index, output in enumerate(network.outputs):
            shape = "x".join(str(d) for d in next(iter(inputs.values())).shape)
            comparisons.append(
                compare(
                    f"{output}@{shape}",
                    reference[index],
                    ours[output],
                    None if fp16 is None else fp16[index],
                    network.classifier and index == 0,
                )
            )
    return comparisons


# ---------------------------------------------------------------------- the networks


def _image(size: int, channels: int = 3, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, channels, size, size)


def _perturb_batchnorm(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics, so a random network exercises the folding."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)


def _classifier(model: torch.nn.Module, size: int) -> Network:
    _perturb_batchnorm(model)
    return Network(model.eval(), {"image": _image(size)}, ["logits"], classifier=True)


def vit_small() -> Network:
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128,
        num_classes=10,
    )  # fmt: skip
    # torchvision zero-initialises the head: random weights there, so the logits mean something.
    torch.nn.init.normal_(model.heads.head.weight, std=0.1)
    return _classifier(model, 32)


def vit_b_16() -> Network:
    from torchvision.models import vit_b_16

    torch.manual_seed(0)
    model = vit_b_16()
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    return _classifier(model, 224)


class _Encoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layer = torch.nn.TransformerEncoderLayer(
            d_model=32, nhead=4, dim_feedforward=64, dropout=0.0, batch_first=True
        )
        self.encoder = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.encoder(tokens)


def transformer_encoder() -> Network:
    torch.manual_seed(0)
    return Network(_Encoder().eval(), {"tokens": torch.randn(1, 10, 32)}, ["encoded"])


def shufflenet_v2() -> Network:
    from torchvision.models import shufflenet_v2_x0_5

    torch.manual_seed(0)
    return _classifier(shufflenet_v2_x0_5(num_classes=10), 64)


def convnext_tiny() -> Network:
    from torchvision.models import convnext_tiny

    torch.manual_seed(0)
    return _classifier(convnext_tiny(num_classes=10), 64)


class _SegmentationOut(torch.nn.Module):
    """A torchvision segmentation model's 'out' map (its forward returns a dict)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)["out"]


def _segmentation(model: torch.nn.Module, size: int) -> Network:
    _perturb_batchnorm(model)
    return Network(
        _SegmentationOut(model).eval(), {"image": _image(size)}, ["out"], classifier=True
    )


def lraspp() -> Network:
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    torch.manual_seed(0)
    return _segmentation(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None), 96)


def lraspp_odd_size() -> Network:
    """LRASPP at 100×100: its feature maps (13×13, 7×7) upsample by non-integer factors."""
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    torch.manual_seed(0)
    return _segmentation(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None), 100)


def deeplabv3() -> Network:
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    torch.manual_seed(0)
    model = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, aux_loss=False)
    return _segmentation(model, 96)


class _Head(torch.nn.Module):
    """A torchvision detection head on a list of feature maps; its raw outputs in order."""

    def __init__(self, head: torch.nn.Module, keys: list[str]) -> None:
        super().__init__()
        self.head = head
        self.keys = keys

    def forward(
        self, p3: torch.Tensor, p4: torch.Tensor, p5: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        result = self.head([p3, p4, p5])
        return tuple(result[k] for k in self.keys)


def _features(channels: int) -> dict[str, torch.Tensor]:
    return {f"p{3 + i}": torch.randn(1, channels, 16 >> i, 16 >> i) for i in range(3)}


def retinanet_head() -> Network:
    from torchvision.models.detection.retinanet import RetinaNetHead

    torch.manual_seed(0)
    head = RetinaNetHead(in_channels=32, num_anchors=9, num_classes=5)
    for module in head.modules():  # torchvision initialises the convs tiny (std 0.01)
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight, std=0.05)
    keys = ["cls_logits", "bbox_regression"]
    return Network(_Head(head, keys).eval(), _features(32), keys)


def fcos_head() -> Network:
    from torchvision.models.detection.fcos import FCOSHead

    torch.manual_seed(0)
    head = FCOSHead(in_channels=64, num_anchors=1, num_classes=5, num_convs=2)  # GroupNorm(32)
    for module in head.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight, std=0.05)
    keys = ["cls_logits", "bbox_regression", "bbox_ctrness"]
    return Network(_Head(head, keys).eval(), _features(64), keys)


class _SSDLiteRaw(torch.nn.Module):
    """SSDLite's backbone and head without anchors or postprocessing: the head's raw outputs."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.head = model.head

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = list(self.backbone(image).values())
        result = self.head(features)
        return result["cls_logits"], result["bbox_regression"]


def ssdlite() -> Network:
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(0)
    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5)
    wrapped = _SSDLiteRaw(model)
    _perturb_batchnorm(wrapped)
    return Network(wrapped.eval(), {"image": _image(128)}, ["cls_logits", "bbox_regression"])


class _TwoInTwoOut(torch.nn.Module):
    """Two named inputs of different shapes, two named outputs of different shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.embed = torch.nn.Linear(5, 8)
        self.score = torch.nn.Linear(8, 4)

    def forward(
        self, image: torch.Tensor, extra: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.conv(image))  # (1, 8, H, W)
        gate = torch.sigmoid(self.embed(extra))  # (1, 8)
        mixed = features * gate[:, :, None, None]
        return mixed, self.score(mixed.mean(dim=(2, 3)) - extra.sum(dim=1, keepdim=True))


def two_inputs_two_outputs() -> Network:
    torch.manual_seed(0)
    inputs = {"image": _image(12), "extra": torch.randn(1, 5)}
    return Network(_TwoInTwoOut().eval(), inputs, ["mixed", "scores"])


class _SmallConvNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(16, 6)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv1(image)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


def flexible_batch() -> Network:
    """A batch axis declared as ct.RangeDim(1, 4), run at batch 1 and batch 3."""
    import coremltools as ct

    torch.manual_seed(0)
    model = _SmallConvNet()
    _perturb_batchnorm(model)
    return Network(
        model.eval(),
        {"image": _image(16, batch=2)},
        ["logits"],
        classifier=True,
        method="trace",  # export would specialise the batch axis to the example's size
        flexible={"image": lambda: ct.Shape((ct.RangeDim(1, 4, default=2), 3, 16, 16))},
        more_inputs=[{"image": _image(16, batch=1)}, {"image": _image(16, batch=3)}],
    )


def enumerated_shapes() -> Network:
    """Spatial sizes declared as ct.EnumeratedShapes, run at both of them."""
    import coremltools as ct

    torch.manual_seed(0)
    model = _SmallConvNet()
    _perturb_batchnorm(model)
    return Network(
        model.eval(),
        {"image": _image(16)},
        ["logits"],
        classifier=True,
        method="trace",
        flexible={
            "image": lambda: ct.EnumeratedShapes(
                shapes=[(1, 3, 16, 16), (1, 3, 24, 24)], default=(1, 3, 16, 16)
            )
        },
        more_inputs=[{"image": _image(24)}],
    )


MODELS: dict[str, Callable[[], Network]] = {
    "vit_small": vit_small,
    "transformer_encoder": transformer_encoder,
    "shufflenet_v2_x0_5": shufflenet_v2,
    "lraspp_mobilenet_v3_large": lraspp,
    "lraspp_odd_size": lraspp_odd_size,
    "retinanet_head": retinanet_head,
    "fcos_head": fcos_head,
    "two_inputs_two_outputs": two_inputs_two_outputs,
    "flexible_batch": flexible_batch,
    "enumerated_shapes": enumerated_shapes,
    "convnext_tiny": convnext_tiny,
    # Big: the slow tests.
    "deeplabv3_mobilenet_v3_large": deeplabv3,
    "ssdlite320_mobilenet_v3_large": ssdlite,
    "vit_b_16": vit_b_16,
}


def missing_ops(message: str) -> list[str]:
    """The reasons an UnsupportedOpError lists, one per bullet."""
    return [line.strip()[2:] for line in message.splitlines() if re.match(r"\s+- ", line)]


def distinct_reasons(reasons: list[str]) -> dict[str, int]:
    """Reasons with the op's own name blanked out, counted (one line per op type/mode)."""
    counts: dict[str, int] = {}
    for reason in reasons:
        key = re.sub(r"\('[^']*'\)", "(…)", reason)
        counts[key] = counts.get(key, 0) + 1
    return counts


def main(names: list[str]) -> None:
    import tempfile

    from coreml_bench.executor import UnsupportedOpError

    for name in names or list(MODELS):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            try:
                comparisons = check_network(MODELS[name](), Path(folder), name)
            except UnsupportedOpError as error:
                print(f"{name}: REFUSED ({time.perf_counter() - started:.0f} s)")
                for reason, count in distinct_reasons(missing_ops(str(error))).items():
                    print(f"    - {reason} (x{count})")
                continue
            except Exception as error:  # a survey: report and go on
                print(f"{name}: ERROR {type(error).__name__}: {str(error)[:2000]}")
                continue
        verdict = "PASS" if all(c.ok for c in comparisons) else "FAIL"
        print(f"{name}: {verdict} ({time.perf_counter() - started:.0f} s)")
        for comparison in comparisons:
            print(f"    {'ok ' if comparison.ok else 'BAD'} {comparison}")


if __name__ == "__main__":
    import logging
    import sys
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    main(sys.argv[1:])
