"""Profiling backend ``coreml`` (macOS): ``MLModel.predict`` timed for each configured compute
unit (ALL, CPU_ONLY, CPU_AND_GPU, CPU_AND_NE): load time, first prediction, median/p90 after
warm-up, and where the OS offers it the compute plan (ops per device)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ..mlpackage.files import input_description, open_package
from .registry import PROFILERS, LatencyRun, Profiler, latency_stats, time_calls

log = logging.getLogger(__name__)


def compute_plan_summary(compiled_path: str, compute_units: Any) -> dict[str, Any] | None:
    """Ops of the main function per preferred device, and the estimated cost share per device.

    ``MLComputePlan`` exists from macOS 14.4; elsewhere (or on failure) None, and the record
    says the plan is unavailable rather than guessing.
    """
    try:
        from coremltools.models.compute_plan import MLComputePlan

        plan = MLComputePlan.load_from_path(path=compiled_path, compute_units=compute_units)
        program = plan.model_structure.program
    except Exception as error:  # the OS or coremltools lacks the API: report, don't fail
        log.warning("no compute plan: %s", error)
        return None
    if program is None:
        return None
    ops: dict[str, int] = {}
    cost: dict[str, float] = {}
    for operation in program.functions["main"].block.operations:
        if operation.operator_name == "const":
            continue
        usage = plan.get_compute_device_usage_for_mlprogram_operation(operation)
        device = _device_name(usage.preferred_compute_device) if usage else "unknown"
        ops[device] = ops.get(device, 0) + 1
        estimate = plan.get_estimated_cost_for_mlprogram_operation(operation)
        if estimate is not None:
            cost[device] = cost.get(device, 0.0) + float(estimate.weight)
    return {
        "ops_per_device": ops,
        "cost_share_per_device": {k: round(v, 4) for k, v in cost.items()},
    }


def _device_name(device: Any) -> str:
    name = type(device).__name__
    return {
        "MLCPUComputeDevice": "cpu",
        "MLGPUComputeDevice": "gpu",
        "MLNeuralEngineComputeDevice": "neural_engine",
    }.get(name, name)


def coreml_feed(package: Path) -> dict[str, Any]:
    """A random input for the package's first input, in the form Core ML takes it."""
    import numpy as np

    described = input_description(package)
    shape = described.get("shape") or [1, 3, 224, 224]
    if described["type"] == "imageType":
        from PIL import Image

        mode = "L" if described.get("color_space") == "GRAYSCALE" else "RGB"
        pixels = np.random.randint(0, 256, (shape[2], shape[3], 3), dtype=np.uint8)
        return {described["name"]: Image.fromarray(pixels).convert(mode)}
    return {described["name"]: np.random.rand(*shape).astype(np.float32)}


def _coreml_one(package: Path, run: LatencyRun, unit: str) -> dict[str, Any]:
    import coremltools as ct

    compute_units = getattr(ct.ComputeUnit, unit)
    t0 = time.perf_counter()
    mlmodel = open_package(package, compute_units=compute_units)
    load_ms = (time.perf_counter() - t0) * 1000.0
    feed = coreml_feed(package)
    t0 = time.perf_counter()
    mlmodel.predict(feed)
    first_ms = (time.perf_counter() - t0) * 1000.0
    samples = time_calls(lambda: mlmodel.predict(feed), run.runs, run.warmup)
    return {
        **latency_stats(samples),
        "load_ms": round(load_ms, 3),
        "first_prediction_ms": round(first_ms, 3),
        "compute_units": unit,
        "compute_plan": compute_plan_summary(mlmodel.get_compiled_model_path(), compute_units),
    }


def measure_coreml(package: Path, run: LatencyRun) -> dict[str, Any]:
    import platform

    by_unit = {unit: _coreml_one(package, run, unit) for unit in run.compute_units}
    first = by_unit[run.compute_units[0]]
    return {
        **first,
        "device": f"{platform.machine()} Mac ({platform.node()})",
        "os": f"macOS {platform.mac_ver()[0]}",
        "by_compute_units": by_unit,
    }


PROFILERS.add(
    "coreml",
    Profiler(
        measure_coreml,
        "Core ML MLModel.predict per compute unit",
        platforms=("darwin",),
        far_side=True,
    ),
)
