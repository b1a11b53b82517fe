"""The profiler registry: how a package's latency is measured, and where.

Imports nothing beyond the standard library (and this package's registry): the far side of
the ``remote`` backend imports it with only Python, coremltools and numpy installed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..registry import Registry, resolve_backend


@dataclass(frozen=True)
class LatencyRun:
    """What a profiler measures: N timed runs after warm-up, on which units or device.

    ``remote`` is the SSH target of the ``remote`` backend (``profile.settings
    .RemoteSettings``); None for the others.
    """

    runs: int = 30
    warmup: int = 5
    compute_units: tuple[str, ...] = ("ALL",)
    threads: int = 1
    device: str = "cpu"
    remote: Any = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "compute_units": list(self.compute_units), "remote": None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatencyRun:
        return cls(**{**data, "compute_units": tuple(data["compute_units"]), "remote": None})


@dataclass(frozen=True)
class Profiler:
    """One profiling backend.

    ``measure(package, run)`` gives the latency figures. ``platforms``: the ``sys.platform``
    values it runs on (None: anywhere). ``times_this_host``: it times work on the machine the
    job runs on, so the job must have that machine to itself (it claims every core).
    ``far_side``: the ``remote`` backend may run it on the machine it reaches.
    ``runs_program``: it runs the package's program with the executor (see ``Evaluator``).
    """

    measure: Callable[[Path, LatencyRun], dict[str, Any]]
    description: str
    platforms: tuple[str, ...] | None = None
    times_this_host: bool = True
    far_side: bool = False
    runs_program: bool = False


PROFILERS: Registry[Profiler] = Registry("profiling backend")

AUTO_ON_MACOS, AUTO_ELSEWHERE = "coreml", "host"


def resolve_profiler(requested: str) -> tuple[str, Profiler]:
    """(name, entry) of the backend to use here; refuses one this platform cannot run."""
    return resolve_backend(PROFILERS, requested, on_macos=AUTO_ON_MACOS, elsewhere=AUTO_ELSEWHERE)


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
