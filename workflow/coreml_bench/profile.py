"""Stage 5: latency and static figures, through a profiler registry.

``coreml`` times ``MLModel.predict`` on macOS with the configured compute units. ``host``
times the package's ML program run by the mil-torch executor on this machine's CPU: it is
labelled ``host`` in every record and table and is never device latency.
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

    from .convert import example_shape
    from .manifest import host_info
    from .mil_executor import ProgramExecutor

    torch.set_num_threads(cfg["threads"])
    t0 = time.perf_counter()
    program = ProgramExecutor(package)
    load_ms = (time.perf_counter() - t0) * 1000.0
    example = torch.rand(*example_shape(model_cfg))
    samples = time_calls(lambda: program(example), cfg["runs"], cfg["warmup"])

    host = host_info()
    return {
        **latency_stats(samples),
        "device": f"host CPU: {host['processor']}",
        "os": f"{host['system']} {host['release']}",
        "compute_units": f"CPU ({cfg['threads']} thread{'s' if cfg['threads'] > 1 else ''})",
        "load_ms": round(load_ms, 3),
    }


def _coreml(package: Path, model_cfg: dict[str, Any], cfg: dict[str, Any]) -> dict:
    import platform

    import coremltools as ct
    import numpy as np

    from .convert import INPUT_NAME, example_shape
    from .mlpackage import open_package

    t0 = time.perf_counter()
    mlmodel = open_package(package, compute_units=getattr(ct.ComputeUnit, cfg["compute_units"]))
    load_ms = (time.perf_counter() - t0) * 1000.0
    feed = {INPUT_NAME: np.random.rand(*example_shape(model_cfg)).astype(np.float32)}
    t0 = time.perf_counter()
    mlmodel.predict(feed)
    first_ms = (time.perf_counter() - t0) * 1000.0
    samples = time_calls(lambda: mlmodel.predict(feed), cfg["runs"], cfg["warmup"])
    return {
        **latency_stats(samples),
        "load_ms": round(load_ms, 3),
        "first_prediction_ms": round(first_ms, 3),
        "device": platform.machine() + " Mac",
        "os": f"macOS {platform.mac_ver()[0]}",
        "compute_units": cfg["compute_units"],
    }


PROFILERS.add(
    "host", Profiler(_host, "the package's ML program run by the mil-torch executor, host CPU")
)
PROFILERS.add("coreml", Profiler(_coreml, "Core ML MLModel.predict", platforms=("darwin",)))


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
        "latency": latency,
        "static": static,
        "timing": timer.summary(),
        "versions": package_versions(),
    }
    write_json_atomic(output, record)
    return record
