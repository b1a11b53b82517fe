"""Stage sensitivity: what compressing one weight tensor at a time costs, on the package.

The compressed package of a setting (rule compress) holds every tensor as coremltools
compressed it; the fp16 package holds them dense. The executor's plans of both hold the
decompressed values, so putting one compressed tensor into the fp16 plan is the fp16 program
with exactly that tensor compressed - what ``op_name_configs`` naming that one tensor would
produce, for settings that compress each tensor on its own (k-means, linear quantization,
magnitude pruning all do; ``tests/sensitivity`` checks it against coremltools). One
compression job per setting then serves every layer, instead of one package per layer.

Each variant runs on the calibration split; its outputs are compared with the fp16
program's (``reference``, one job per model, reused by every setting): KL divergence of the
softmax, output SNR, top-1 against the labels and agreement with the fp16 top-1.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data import DataSelection
from ..data.transforms import Preprocessing
from ..fingerprint import record_provenance
from ..io import atomic_path, directory_bytes, write_json_atomic
from ..mlpackage.tensors import WEIGHT_OPS, StoredWeight, stored_weights
from ..provenance import StageTimer, host_info
from .calibration import calibration_batches
from .settings import CalibrationSettings

if TYPE_CHECKING:
    import torch

    from ..executor.plan import Plan

log = logging.getLogger(__name__)


def output_measures(
    reference: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor
) -> dict[str, float | None]:
    """How far ``logits`` are from the fp16 program's ``reference`` logits (same samples).

    ``kl``: mean KL(p_ref || p) of the softmax, in nats; ``snr_db``: output SNR in dB (None
    for identical outputs); ``top1``: % correct against ``labels``; ``agreement``: % of
    samples whose top-1 class equals the reference's.
    """
    import torch

    ref, out = reference.double(), logits.double()
    log_p = torch.log_softmax(ref, dim=1)
    log_q = torch.log_softmax(out, dim=1)
    kl = float((log_p.exp() * (log_p - log_q)).sum(dim=1).mean())
    noise = float(((ref - out) ** 2).sum())
    # None (JSON null) for identical outputs, where the SNR is unbounded.
    snr = None if noise == 0 else 10 * math.log10(float((ref**2).sum()) / noise)
    top1 = float((out.argmax(1) == labels).double().mean() * 100)
    agreement = float((out.argmax(1) == ref.argmax(1)).double().mean() * 100)
    return {"kl": max(kl, 0.0), "snr_db": snr, "top1": top1, "agreement": agreement}


def run_plan(plan: Plan, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The program's first output over every batch (rows stacked as evaluation does)."""
    import torch

    from ..executor.runtime import CompiledProgram

    program = CompiledProgram(plan)
    name, output = program.inputs[0].name, program.outputs[0].name
    return torch.cat([program.rows(**{name: x})[output].float() for x, _ in batches])


def reference_outputs(
    *,
    package: Path,
    data: DataSelection,
    preprocessing: Preprocessing,
    settings: CalibrationSettings,
    output: Path,
    record: Path,
    context: dict[str, Any],
) -> dict[str, Any]:
    """The fp16 program's logits on the calibration split (``output``, tensors only) and
    its summary (``record``): what every setting's per-layer job compares against."""
    import torch

    from ..executor.runtime import load_or_compile

    timer = StageTimer()
    with timer.section("load"):
        batches = calibration_batches(data, preprocessing, settings)
        plan = load_or_compile(package)
    with timer.section("run"):
        logits = run_plan(plan, batches)
    labels = torch.cat([y for _, y in batches])
    with atomic_path(output) as staging:
        torch.save({"logits": logits, "labels": labels}, staging)
    summary = {
        "stage": "sensitivity_reference",
        **context,
        "backend": "mil-torch",
        "calibration": _calibration_summary(data, settings, len(labels)),
        "top1": output_measures(logits, logits, labels)["top1"],
        "host": host_info(),
        "timing": timer.summary(),
        "provenance": record_provenance("sensitivity_reference"),
    }
    write_json_atomic(record, summary)
    return summary


def _calibration_summary(
    data: DataSelection, settings: CalibrationSettings, samples: int
) -> dict[str, Any]:
    return {
        **settings.model_dump(mode="json"),
        "dataset": data.source.model_dump(mode="json"),
        "n_samples": samples,
    }


@dataclasses.dataclass(frozen=True)
class SwappableWeight:
    """A weight the setting changed: where it sits in the fp16 plan and its compressed value."""

    op_name: str
    const_key: str  # key of the fp16 plan's constant
    value: Any  # the compressed package's decompressed tensor
    dense: StoredWeight
    compressed: StoredWeight


def changed_weights(
    fp16_plan: Plan,
    plan: Plan,
    fp16_stored: list[StoredWeight],
    stored: list[StoredWeight],
) -> list[SwappableWeight]:
    """The conv/linear weights whose values differ between the two plans, in program order
    (a tensor the setting skipped - e.g. below ``weight_threshold`` - is not listed)."""
    import torch

    dense = {w.op_name: w for w in fp16_stored}
    compressed = {w.op_name: w for w in stored}
    steps = {s.name: s for s in plan.steps}
    found = []
    for step in fp16_plan.steps:
        argument = step.inputs.get("weight", {})
        if step.op not in WEIGHT_OPS or "const" not in argument or step.name not in dense:
            continue
        other = steps.get(step.name)
        other_argument = other.inputs.get("weight", {}) if other else {}
        if other is None or "const" not in other_argument or step.name not in compressed:
            raise ValueError(
                f"op {step.name!r} of the fp16 program has no stored weight in the compressed "
                "program: the packages are not the same program"
            )
        value = plan.constants[other_argument["const"]]
        if torch.equal(value, fp16_plan.constants[argument["const"]]):
            continue
        found.append(
            SwappableWeight(
                step.name, argument["const"], value, dense[step.name], compressed[step.name]
            )
        )
    return found


def with_weight(plan: Plan, weight: SwappableWeight) -> Plan:
    """The fp16 plan with one tensor replaced by its compressed value."""
    return dataclasses.replace(plan, constants={**plan.constants, weight.const_key: weight.value})


def layer_sensitivity(
    *,
    fp16_package: Path,
    package: Path,
    reference: Path,
    data: DataSelection,
    preprocessing: Preprocessing,
    settings: CalibrationSettings,
    setting: dict[str, Any],
    output: Path,
    context: dict[str, Any],
) -> dict[str, Any]:
    """One row per weight tensor the setting compresses: the measures of the fp16 program
    with only that tensor compressed, and the bytes it holds dense and compressed."""
    import torch

    from ..executor.runtime import load_or_compile

    timer = StageTimer()
    with timer.section("load"):
        fp16_plan, plan = load_or_compile(fp16_package), load_or_compile(package)
        fp16_stored, stored = stored_weights(fp16_package), stored_weights(package)
        weights = changed_weights(fp16_plan, plan, fp16_stored, stored)
        expected = torch.load(reference, weights_only=True)
        batches = calibration_batches(data, preprocessing, settings)
    labels = torch.cat([y for _, y in batches])
    if not torch.equal(labels, expected["labels"]):
        raise ValueError(
            f"{reference}: the reference outputs are for other calibration samples "
            "(labels differ); rerun rule sensitivity_reference"
        )
    ref = expected["logits"]
    layers = []
    with timer.section("measure"):
        whole = output_measures(ref, run_plan(plan, batches), labels)
        for index, weight in enumerate(weights, 1):
            logits = run_plan(with_weight(fp16_plan, weight), batches)
            measures = output_measures(ref, logits, labels)
            layers.append(_layer_row(weight, measures, ref_top1=_top1(ref, labels)))
            log.info(
                "tensor %d/%d %s: KL %.4g, top-1 %.1f %%",
                index, len(weights), weight.op_name, measures["kl"], measures["top1"],
            )  # fmt: skip
    summary = {
        "stage": "sensitivity",
        **context,
        "backend": "mil-torch",
        "setting": setting,
        "calibration": _calibration_summary(data, settings, len(labels)),
        "reference_top1": _top1(ref, labels),
        "whole_model": whole,
        # What the search needs to turn tensor bytes into package bytes.
        "package_bytes": directory_bytes(package),
        "stored_weight_bytes": sum(w.stored_bytes for w in stored),
        "fp16_package_bytes": directory_bytes(fp16_package),
        "fp16_stored_weight_bytes": sum(w.stored_bytes for w in fp16_stored),
        "layers": layers,
        "host": host_info(),
        "timing": timer.summary(),
        "provenance": record_provenance("sensitivity"),
    }
    write_json_atomic(output, summary)
    return summary


def _top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).double().mean() * 100)


def _layer_row(
    weight: SwappableWeight, measures: dict[str, Any], ref_top1: float
) -> dict[str, Any]:
    return {
        "op_name": weight.op_name,
        "op_type": weight.dense.op_type,
        "const_name": weight.dense.const_name,
        "shape": list(weight.value.shape),
        "parameters": int(weight.value.numel()),
        "dense_bytes": weight.dense.stored_bytes,
        "compressed_bytes": weight.compressed.stored_bytes,
        "encoding": weight.compressed.encoding,
        **measures,
        "top1_drop": ref_top1 - measures["top1"],
        "agreement_drop": 100.0 - measures["agreement"],
    }
