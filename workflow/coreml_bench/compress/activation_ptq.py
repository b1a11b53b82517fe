"""Post-training W8A8 off Apple: activation ranges computed by the executor, the
quantize/dequantize pairs inserted by coremltools' own passes, int8 weights on top.

coremltools' ``experimental.linear_quantize_activations`` measures each intermediate tensor's
range by running the model with ``MLModel.predict`` (macOS only), then inserts
``quantize``/``dequantize`` pairs with its graph passes
(``compression::insert_prefix_quantize_dequantize_pair`` and ``..._suffix_...``, then
``common::dequantize_quantize_pair_elimination``) fed with those ranges. Here the ranges come
from the executor running the fp16 program on the calibration split: every op output of the
program (its outputs excepted, as coremltools does) and its inputs, as min/max over all
samples; inputs and outputs of one ``concat`` share one range (coremltools' own adjustment).
Then the same passes, and ``linear_quantize_weights`` (int8 per channel), as its docs pair
them.

coremltools 9.0's recorder (``_model_debugger.record_intermediate_output``) assigns the
current sample's range before it takes the min/max with the stored one, so on a Mac it keeps
the *last* sample's range; the ranges here are over every calibration sample, as its
docstring describes.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ..schema_base import StrictModel
from .registry import ALGORITHMS, Algorithm

if TYPE_CHECKING:
    from ..executor.plan import Plan
    from ..sensitivity.calibration import CalibrationData

log = logging.getLogger(__name__)

FLOAT_DTYPES = ("fp16", "fp32")


class QuantizeActivationsPTQ(StrictModel):
    """W8A8 post-training: int8 activations (calibrated by the executor) and int8 weights."""

    algorithm: Literal["quantize_activations_ptq"] = "quantize_activations_ptq"
    mode: Literal["linear_symmetric", "linear"] = "linear_symmetric"
    weight_threshold: int = Field(default=2048, ge=0)

    def label(self) -> str:
        return "W8A8 (PTQ, executor calibration)"

    def minimum_target(self) -> str:
        return "iOS17"  # activation quantize/dequantize ops


def observing_plan(plan: Plan) -> Plan:
    """The plan returning, beside nothing else, every float op output that is not a program
    output - the tensors coremltools' calibration records."""
    from ..executor.plan import TensorInfo

    outputs = {o.name for o in plan.outputs}
    observed = [
        TensorInfo(name=name, dtype=dtype, shape=list(shape))
        for step in plan.steps
        for name, dtype, shape in zip(step.outputs, step.dtypes, step.shapes, strict=True)
        if dtype in FLOAT_DTYPES and name not in outputs
    ]
    return dataclasses.replace(plan, outputs=observed)


def activation_ranges(plan: Plan, batches: list[tuple[Any, Any]]) -> dict[str, dict[str, float]]:
    """{tensor name: {"rmin", "rmax"}} over every calibration sample, inputs included."""
    import torch

    from ..executor.runtime import CompiledProgram

    program = CompiledProgram(observing_plan(plan))
    name = program.inputs[0].name
    ranges: dict[str, dict[str, float]] = {}

    def update(tensor_name: str, value: torch.Tensor) -> None:
        low, high = float(value.min()), float(value.max())
        seen = ranges.setdefault(tensor_name, {"rmin": low, "rmax": high})
        seen["rmin"], seen["rmax"] = min(seen["rmin"], low), max(seen["rmax"], high)

    for images, _ in batches:
        update(name, images)
        for tensor_name, value in program.rows(**{name: images}).items():
            update(tensor_name, value)
    return ranges


def quantize_activations(mlmodel: Any, ranges: dict[str, dict[str, float]], mode: str) -> Any:
    """coremltools' activation passes on ``mlmodel`` with these ranges (A8 only)."""
    import coremltools.optimize.coreml as cto
    from coremltools import _SPECIFICATION_VERSION_IOS_17
    from coremltools.converters.mil.frontend.milproto import load as milproto_load
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models import utils as model_utils
    from coremltools.optimize.coreml.experimental import _post_training_quantization as ptq
    from coremltools.optimize.coreml.experimental._model_debugger import ModelDebugger

    stats: dict[str, dict[str, Any]] = {k: dict(v) for k, v in ranges.items()}
    ptq._adjust_concat_surrounding_activation_stats(
        ModelDebugger(mlmodel)._get_concat_op_info(), stats
    )
    config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode=mode))
    passes = []
    for name in (
        "insert_prefix_quantize_dequantize_pair",
        "insert_suffix_quantize_dequantize_pair",
    ):
        graph_pass = PASS_REGISTRY[f"compression::{name}"]
        graph_pass.set_options([PassOption("config", config)])
        graph_pass.set_options([PassOption("activation_stats", stats)])
        passes.append(graph_pass)
    passes.append(PASS_REGISTRY["common::dequantize_quantize_pair_elimination"])
    return model_utils._apply_graph_pass(
        mlmodel,
        passes,
        spec_version=_SPECIFICATION_VERSION_IOS_17,  # the activation quantize/dequantize ops
        pymil_load_func=milproto_load.load,
        skip_model_load=True,
    )


def _apply_w8a8(
    mlmodel: Any, params: QuantizeActivationsPTQ, *, calibration: CalibrationData
) -> Any:
    # coreml_side is imported here, not at the top: imported first, it would register its
    # algorithms before this one and reorder the generated config schema and reference.
    from ..executor.runtime import load_or_compile
    from .coreml_side import QuantizeLinear, pass_config

    plan = load_or_compile(calibration.package)
    samples = sum(len(x) for x, _ in calibration.batches)
    log.info("calibrating activation ranges on %d samples with the executor", samples)
    ranges = activation_ranges(plan, calibration.batches)
    log.info("%d tensor ranges measured; inserting quantize/dequantize pairs", len(ranges))
    quantized = quantize_activations(mlmodel, ranges, params.mode)
    # The int8 per-channel weights of the int8 row (``quantize_linear``), on top.
    weights = QuantizeLinear(mode=params.mode, weight_threshold=params.weight_threshold)
    return pass_config(weights).run(quantized)


ALGORITHMS.add(
    "quantize_activations_ptq",
    Algorithm(
        QuantizeActivationsPTQ,
        "W8A8 PTQ (executor calibration)",
        "Calibration",
        kind="coreml",
        marker="D",
        apply=_apply_w8a8,
        inputs=("calibration",),
    ),
)
