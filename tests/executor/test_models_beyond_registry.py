"""The program executor on networks beyond the model registry: transformers (ViT, a torch
TransformerEncoder), ShuffleNetV2 (concat, channel shuffle), ConvNeXt (layer norm over
channels, permutes), segmentation (bilinear upsampling), detection heads (RetinaNet, FCOS,
SSDLite's raw outputs), named multiple inputs/outputs and flexible input shapes.

Each network has seeded random weights, is converted to an fp16 ML program as
``coreml_bench.convert.to_coreml`` converts (torch.export), saved, run through
``CompiledProgram.from_package(...).run(**named inputs)`` and compared with torch's fp32
answer: max |Δ| within max(2 % of the output's max |value|, 3 × the drift of torch's own fp16
run), and for classifiers (segmentation: per pixel) the same top-1 class except near-ties.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from executor_models import MODELS, Comparison, check_network

DEFAULT = [
    "vit_small",
    "transformer_encoder",
    "shufflenet_v2_x0_5",
    "convnext_tiny",
    "lraspp_mobilenet_v3_large",
    "lraspp_odd_size",  # non-integer upsampling factors (13/7, 100/13)
    "retinanet_head",
    "fcos_head",
]
BIG = [
    "vit_b_16",
    "deeplabv3_mobilenet_v3_large",
    "ssdlite320_mobilenet_v3_large",
]


def assert_agrees(comparisons: list[Comparison]) -> None:
    assert comparisons
    bad = [str(c) for c in comparisons if not c.ok]
    assert not bad, "executor differs from torch beyond fp16 tolerance:\n" + "\n".join(bad)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", DEFAULT)
def test_executor_runs_the_network_like_torch(name: str, tmp_path: Path) -> None:
    assert_agrees(check_network(MODELS[name](), tmp_path, name))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", BIG)
def test_executor_runs_the_full_size_network_like_torch(name: str, tmp_path: Path) -> None:
    assert_agrees(check_network(MODELS[name](), tmp_path, name))


@pytest.mark.filterwarnings("ignore")
def test_executor_takes_and_returns_several_tensors_by_name(tmp_path: Path) -> None:
    from coreml_bench.executor import CompiledProgram

    network = MODELS["two_inputs_two_outputs"]()
    assert_agrees(check_network(network, tmp_path, "two"))
    program = CompiledProgram.from_package(tmp_path / "two.mlpackage")
    image, extra = network.inputs["image"], network.inputs["extra"]
    named = program.run(extra=extra, image=image)  # by name, in any order
    positional = program.run(image, extra)
    for name in ("mixed", "scores"):
        assert torch.equal(named[name], positional[name])
    with pytest.raises(TypeError, match="missing \\['extra'\\]"):
        program.run(image=image)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", ["flexible_batch", "enumerated_shapes"])
def test_executor_runs_a_flexible_program_at_each_declared_shape(name: str, tmp_path: Path) -> None:
    from coreml_bench.executor import CompiledProgram, ShapeError

    network = MODELS[name]()
    comparisons = check_network(network, tmp_path, name)
    assert len({c.name for c in comparisons}) >= 2  # ran at two input shapes (in the names)
    assert_agrees(comparisons)
    program = CompiledProgram.from_package(tmp_path / f"{name}.mlpackage")
    assert program.inputs[0].flexible
    outside = torch.randn(5, 3, 16, 16) if name == "flexible_batch" else torch.randn(1, 3, 20, 20)
    with pytest.raises(ShapeError, match="image"):
        program.run(image=outside)


def test_the_comparison_rejects_a_wrong_answer_and_forgives_near_ties() -> None:
    from executor_models import compare

    reference = torch.tensor([[1.0, 0.98, -2.0], [0.30, 0.31, 0.0]])
    assert compare("x", reference, reference + 1e-3, None, classifier=True).ok
    assert not compare("x", reference, reference * 1.05, None, classifier=False).ok  # 5 % off
    # Within tolerance (max |Δ| 0.015) but the top-1 class moves past a 0.02 margin: wrong.
    swapped = reference.clone()
    swapped[0, 0], swapped[0, 1] = 0.985, 0.995
    assert compare("x", reference, swapped, None, classifier=True).top1_mismatches == 1
    # A near-tie (gap 0.01 ≤ max |Δ| 0.02) may flip.
    tie = reference.clone()
    tie[1, 0], tie[1, 1] = 0.32, 0.30
    assert compare("x", reference, tie, None, classifier=True).top1_mismatches == 0
    # torch's own fp16 drift widens the tolerance to 3 × that drift.
    assert compare("x", reference, reference + 0.05, reference + 0.02, classifier=False).ok
