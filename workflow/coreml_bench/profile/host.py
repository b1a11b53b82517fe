"""Profiling backend ``host``: the package's ML program run by the program executor on this
machine's CPU or GPU. Labelled ``host``: never device latency."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..executor import ProgramExecutor
from ..provenance import host_info
from .registry import PROFILERS, LatencyRun, Profiler, latency_stats, time_calls


def measure_host(package: Path, run: LatencyRun) -> dict[str, Any]:
    import torch

    device = run.device
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("profiling.device 'cuda': torch sees no CUDA device on this machine")
    torch.set_num_threads(run.threads)
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
    samples = time_calls(call, run.runs, run.warmup)
    host = host_info()
    if device == "cuda":
        where = f"host GPU: {torch.cuda.get_device_name()}"
        units = "GPU (CUDA)"
    else:
        where = f"host CPU: {host['processor']}"
        units = f"CPU ({run.threads} thread{'s' if run.threads > 1 else ''})"
    return {
        **latency_stats(samples),
        "device": where,
        "os": f"{host['system']} {host['release']}",
        "compute_units": units,
        "load_ms": round(load_ms, 3),
        "first_prediction_ms": round(first_ms, 3),
    }


PROFILERS.add(
    "host",
    Profiler(
        measure_host,
        "the package's ML program run by the mil-torch executor on this machine",
        far_side=True,
        runs_program=True,
    ),
)
