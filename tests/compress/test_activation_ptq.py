"""W8A8 post-training off Apple: the executor measures activation ranges, coremltools' own
passes insert the quantize/dequantize pairs, and the package runs on the executor."""

from __future__ import annotations

from pathlib import Path

import torch
from coreml_bench.compress import ALGORITHMS
from coreml_bench.compress.activation_ptq import (
    QuantizeActivationsPTQ,
    activation_ranges,
    observing_plan,
)
from coreml_bench.evaluate.weights_torch import fuse_batchnorm
from coreml_bench.executor.runtime import CompiledProgram, load_or_compile
from coreml_bench.mlpackage.files import load_spec, op_type_counts
from coreml_bench.models import build_model
from coreml_bench.sensitivity.calibration import CalibrationData


def _batches(count: int = 2) -> list[tuple[torch.Tensor, None]]:
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 1, 28, 28, generator=generator), None) for _ in range(count)]


def test_ranges_are_those_of_the_torch_activations(fashion_package: Path) -> None:
    plan = load_or_compile(fashion_package)
    batches = _batches()
    ranges = activation_ranges(plan, batches)
    observed = {o.name for o in observing_plan(plan).outputs}
    assert set(ranges) == observed | {plan.inputs[0].name}
    assert plan.outputs[0].name not in ranges  # program outputs are not calibrated
    # The fixture's network, BatchNorm folded as the package has it; its ReLU outputs in
    # order are the program's relu ops in order.
    torch.manual_seed(0)
    network = fuse_batchnorm(build_model("fashion_cnn", 10).eval(), 28)
    seen: list[list[float]] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.append([out.min(), out.max()]))
        for m in network.modules()
        if isinstance(m, torch.nn.ReLU)
    ]
    with torch.no_grad():
        for images, _ in batches:
            network(images)
    for hook in hooks:
        hook.remove()
    relus = [s.outputs[0] for s in plan.steps if s.op == "relu"]
    assert len(relus) == len(hooks) == 5
    for index, name in enumerate(relus):
        per_batch = seen[index :: len(relus)]
        low, high = min(float(b[0]) for b in per_batch), max(float(b[1]) for b in per_batch)
        assert ranges[name]["rmin"] == low == 0.0
        assert abs(ranges[name]["rmax"] - high) <= 2e-3 * high  # the program computes in fp16


def test_w8a8_package_has_int8_activations_and_runs(fashion_package: Path, tmp_path: Path) -> None:
    import coremltools as ct

    params = QuantizeActivationsPTQ()
    mlmodel = ct.models.MLModel(str(fashion_package), skip_model_load=True)
    calibration = CalibrationData(package=fashion_package, batches=_batches())
    package = tmp_path / "w8a8.mlpackage"
    ALGORITHMS[params.algorithm].apply(mlmodel, params, calibration=calibration).save(  # type: ignore[misc]
        str(package)
    )
    ops = op_type_counts(load_spec(package))
    assert ops["quantize"] >= 5 and ops["dequantize"] >= 5  # every conv/linear input
    assert ops["constexpr_blockwise_shift_scale"] == 4  # int8 weights over the threshold
    images = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    fp16 = CompiledProgram(load_or_compile(fashion_package)).rows(images)["logits"]
    w8a8 = CompiledProgram(load_or_compile(package, cache=False)).rows(images)["logits"]
    scale = float(fp16.abs().max())
    # int8 steps of ~1/127 of each range, through six layers: a few % of the output scale.
    assert float((w8a8 - fp16).abs().max()) < 0.05 * scale
    assert float((w8a8.argmax(1) == fp16.argmax(1)).float().mean()) >= 0.9
    assert not torch.equal(w8a8, fp16)  # the activations really are quantized
