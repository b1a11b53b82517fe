"""The program executor (mil-torch) on real programs: a published network on real images and a
palettized program, against torch; unsupported ops named before anything runs."""

from __future__ import annotations

from pathlib import Path

import torch
from coreml_bench.evaluate.weights_torch import load_package_weights
from reference_packages import FP16_TOLERANCE, relative_gap


def test_executor_runs_the_real_lite0_program_like_torch(
    lite0: tuple[torch.nn.Module, Path], imagenet20: tuple[torch.Tensor, torch.Tensor]
) -> None:
    from coreml_bench.executor import ProgramExecutor

    model, package = lite0
    images, labels = imagenet20
    program = ProgramExecutor(package)
    with torch.no_grad():
        reference = model(images)
    ours = program(images)
    assert ours.shape == reference.shape
    assert relative_gap(reference, ours) < FP16_TOLERANCE
    assert torch.equal(reference.argmax(1), ours.argmax(1))
    assert int((ours.argmax(1) == labels).sum()) == 17
    # Batched and one-by-one runs agree (batch-1 shapes are re-batched); they differ only by
    # fp16 rounding of float32 sums that torch accumulates in batch-dependent order.
    singles = torch.cat([program(images[i : i + 1]) for i in range(4)])
    assert relative_gap(ours[:4], singles) < 2e-3
    assert torch.equal(singles.argmax(1), ours[:4].argmax(1))


def test_executor_agrees_with_the_decompressed_weights_on_a_palettized_program(
    mnv3: tuple[torch.nn.Module, Path], mnv3_k4: Path
) -> None:
    from coreml_bench.executor import ProgramExecutor

    model, _fp16 = mnv3
    torch.manual_seed(1)
    images = torch.randn(4, 3, 224, 224)
    carried = load_package_weights(model, mnv3_k4)
    with torch.no_grad():
        reference = carried(images)
    ours = ProgramExecutor(mnv3_k4)(images)
    assert relative_gap(reference, ours) < FP16_TOLERANCE
    assert torch.equal(reference.argmax(1), ours.argmax(1))
