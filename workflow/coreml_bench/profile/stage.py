"""Stage profile: latency (through the profiler registry) and static figures of a package."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..fingerprint import record_provenance
from ..io import write_json_atomic
from ..mlpackage.program import read_package_weights
from ..models import ModelSpec, build_model
from ..provenance import StageTimer, package_versions
from .registry import LatencyRun, resolve_profiler
from .static import static_figures

log = logging.getLogger(__name__)


def profile_package(
    *,
    package: Path,
    model: ModelSpec,
    backend: str,
    run: LatencyRun,
    output: Path,
    context: dict[str, Any],
) -> dict[str, Any]:
    name, profiler = resolve_profiler(backend)
    timer = StageTimer()
    log.info("profiling %s with backend %s", package, name)
    with timer.section("latency"):
        latency = profiler.measure(package, run)
    with timer.section("static"):
        stored = read_package_weights(package)
        # MACs depend on shapes only: the bare architecture will do (published packages
        # come without a checkpoint).
        network = build_model(model.architecture, model.num_classes)
        static = static_figures(package, network, model.example_shape(), stored)
    record = {
        "stage": "profile",
        **context,
        "backend": name,
        "backend_description": profiler.description,
        "runs": run.runs,
        "warmup": run.warmup,
        "batch_size": 1,
        "latency": {**latency, "backend": name, "runs": run.runs, "warmup": run.warmup},
        "static": static,
        "timing": timer.summary(),
        "versions": package_versions(),
        "provenance": record_provenance("profile"),
    }
    write_json_atomic(output, record)
    return record
