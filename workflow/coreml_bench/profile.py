"""Stage 5: latency and static figures, through a profiler registry.

``coreml`` times ``MLModel.predict`` on macOS for each configured compute unit (ALL, CPU_ONLY,
CPU_AND_GPU, CPU_AND_NE): load time, first prediction, median/p90 after warm-up, and where the
OS offers it the compute plan (ops per device). ``host`` times the package's ML program run by
the mil-torch executor on this machine's CPU or GPU: labelled ``host``, never device latency.
``remote`` runs either of them on a machine reachable over SSH (``coreml_bench.remote``) with
this same module as the far side's entry point (``python -m coreml_bench.profile request.json``).
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .registry import Registry, require_platform

if TYPE_CHECKING:
    from .weights_roundtrip import PackageWeight

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Profiler:
    measure: Callable[..., dict[str, Any]]
    description: str
    platforms: tuple[str, ...] | None = None


PROFILERS: Registry[Profiler] = Registry("profiling backend")


def latency_stats(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    p90_index = min(len(ordered) - 1, max(0, round(0.9 * (len(ordered) - 1))))
    return {
        "latency_median_ms": round(statistics.median(ordered), 4),
        "latency_p90_ms": round(ordered[p90_index], 4),
        "latency_mean_ms": round(statistics.fmean(ordered), 4),
        "latency_min_ms": round(ordered[0], 4),
    }


def time_calls(call: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return samples


def _host(package: Path, model_cfg: dict[str, Any], cfg: dict[str, Any]) -> dict:
    import torch

    from .manifest import host_info
    from .mil_executor import ProgramExecutor

    device = cfg.get("device", "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("profiling.device 'cuda': torch sees no CUDA device on this machine")
    torch.set_num_threads(cfg["threads"])
    t0 = time.perf_counter()
    program = ProgramExecutor(package, device=device)
    load_ms = (time.perf_counter() - t0) * 1000.0
    example = torch.rand(1, *program.input_shape[1:])

    def call() -> None:
        program(example)
        if device == "cuda":
            torch.cuda.synchronize()  # time the work, not the kernel launches

    t0 = time.perf_counter()
    call()
    first_ms = (time.perf_counter() - t0) * 1000.0
    samples = time_calls(call, cfg["runs"], cfg["warmup"])
    host = host_info()
    if device == "cuda":
        where = f"host GPU: {torch.cuda.get_device_name()}"
        units = "GPU (CUDA)"
    else:
        where = f"host CPU: {host['processor']}"
        units = f"CPU ({cfg['threads']} thread{'s' if cfg['threads'] > 1 else ''})"
    return {
        **latency_stats(samples),
        "device": where,
        "os": f"{host['system']} {host['release']}",
        "compute_units": units,
        "load_ms": round(load_ms, 3),
        "first_prediction_ms": round(first_ms, 3),
    }


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

    from .mlpackage import input_description

    described = input_description(package)
    shape = described.get("shape") or [1, 3, 224, 224]
    if described["type"] == "imageType":
        from PIL import Image

        mode = "L" if described.get("color_space") == "GRAYSCALE" else "RGB"
        pixels = np.random.randint(0, 256, (shape[2], shape[3], 3), dtype=np.uint8)
        return {described["name"]: Image.fromarray(pixels).convert(mode)}
    return {described["name"]: np.random.rand(*shape).astype(np.float32)}


def _coreml_one(package: Path, cfg: dict[str, Any], unit: str) -> dict[str, Any]:
    import coremltools as ct

    from .mlpackage import open_package

    compute_units = getattr(ct.ComputeUnit, unit)
    t0 = time.perf_counter()
    mlmodel = open_package(package, compute_units=compute_units)
    load_ms = (time.perf_counter() - t0) * 1000.0
    feed = coreml_feed(package)
    t0 = time.perf_counter()
    mlmodel.predict(feed)
    first_ms = (time.perf_counter() - t0) * 1000.0
    samples = time_calls(lambda: mlmodel.predict(feed), cfg["runs"], cfg["warmup"])
    return {
        **latency_stats(samples),
        "load_ms": round(load_ms, 3),
        "first_prediction_ms": round(first_ms, 3),
        "compute_units": unit,
        "compute_plan": compute_plan_summary(mlmodel.get_compiled_model_path(), compute_units),
    }


def _coreml(package: Path, model_cfg: dict[str, Any], cfg: dict[str, Any]) -> dict:
    import platform

    by_unit = {unit: _coreml_one(package, cfg, unit) for unit in cfg["compute_units"]}
    first = by_unit[cfg["compute_units"][0]]
    return {
        **first,
        "device": f"{platform.machine()} Mac ({platform.node()})",
        "os": f"macOS {platform.mac_ver()[0]}",
        "by_compute_units": by_unit,
    }


def _remote(package: Path, model_cfg: dict[str, Any], cfg: dict[str, Any]) -> dict:
    from .remote import profile_over_ssh

    return profile_over_ssh(package, model_cfg, cfg)


PROFILERS.add(
    "host",
    Profiler(_host, "the package's ML program run by the mil-torch executor on this machine"),
)
PROFILERS.add(
    "coreml",
    Profiler(_coreml, "Core ML MLModel.predict per compute unit", platforms=("darwin",)),
)
PROFILERS.add(
    "remote",
    Profiler(_remote, "the coreml or host profiler run on a machine reached over SSH"),
)


def resolve_backend(requested: str) -> str:
    if requested != "auto":
        return requested
    return "coreml" if sys.platform == "darwin" else "host"


def static_figures(
    package: Path, model: Any, shape: tuple[int, ...], stored: list[PackageWeight]
) -> dict[str, Any]:
    """Size on disk, parameter count (as ``stored`` in the package) and MACs of one image.

    MACs come from the architecture's conv/linear shapes (``model``), not from weight values.
    """
    import torch

    from .mlpackage import directory_bytes, weight_file_bytes

    parameters = sum(w.weight.size + (w.bias.size if w.bias is not None else 0) for w in stored)
    macs = 0

    def count(module: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, torch.nn.Conv2d):
            per_output = module.in_channels // module.groups
            per_output *= module.kernel_size[0] * module.kernel_size[1]
            macs += output.numel() * per_output
        elif isinstance(module, torch.nn.Linear):
            macs += output.numel() * module.in_features

    hooks = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    with torch.no_grad():
        model(torch.rand(*shape))
    for hook in hooks:
        hook.remove()
    return {
        "package_bytes": directory_bytes(package),
        "weight_bytes": weight_file_bytes(package),
        "parameters": int(parameters),
        "macs": int(macs),
    }


def profile_package(
    *,
    package: Path,
    model_cfg: dict[str, Any],
    profiling_cfg: dict[str, Any],
    output: Path,
    context: dict[str, Any],
) -> dict[str, Any]:
    from .convert import example_shape
    from .manifest import StageTimer, package_versions, write_json_atomic
    from .models import build_model
    from .weights_roundtrip import read_package_weights

    name = resolve_backend(profiling_cfg["backend"])
    profiler = PROFILERS[name]
    require_platform("profiling backend", name, profiler.platforms, "host")
    timer = StageTimer()
    log.info("profiling %s with backend %s", package, name)
    with timer.section("latency"):
        latency = profiler.measure(package, model_cfg, profiling_cfg)
    with timer.section("static"):
        stored = read_package_weights(package)
        # MACs depend on shapes only: the bare architecture will do (published packages
        # come without a checkpoint).
        model = build_model(model_cfg["architecture"], model_cfg["num_classes"])
        static = static_figures(package, model, example_shape(model_cfg), stored)
    record = {
        "stage": "profile",
        **context,
        "backend": name,
        "backend_description": profiler.description,
        "runs": profiling_cfg["runs"],
        "warmup": profiling_cfg["warmup"],
        "batch_size": 1,
        "latency": {
            **latency,
            "backend": name,
            "runs": profiling_cfg["runs"],
            "warmup": profiling_cfg["warmup"],
        },
        "static": static,
        "timing": timer.summary(),
        "versions": package_versions(),
    }
    write_json_atomic(output, record)
    return record


def main(argv: list[str] | None = None) -> None:
    """Far-side entry point: ``python -m coreml_bench.profile request.json`` (see remote.py).

    Prints one line: the marker, then the latency record as JSON.
    """
    import json

    from .remote import RESULT_MARKER

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m coreml_bench.profile request.json")
    request = json.loads(Path(args[0]).read_text())
    name = request["backend"]
    profiler = PROFILERS[name]
    require_platform("profiling backend", name, profiler.platforms, "host")
    result = profiler.measure(Path(request["package"]), request["model"], request["profiling"])
    print(RESULT_MARKER + json.dumps({**result, "backend": name}), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    main()
