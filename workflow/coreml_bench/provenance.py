"""What every record says about how it was made: versions, host, commit, time and memory."""

from __future__ import annotations

import contextlib
import functools
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = (
    "torch",
    "torchvision",
    "coremltools",
    "snakemake",
    "mlflow",
    "pydantic",
    "numpy",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = platform.python_version()
    return versions


@functools.cache
def git_commit(cwd: Path | None = None) -> str:
    """The checkout's commit, or 'unknown' outside git (e.g. an sdist or a cluster copy)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd or Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 / (1024 * 1024) if sys.platform == "darwin" else 1 / 1024
    return round(peak * scale, 1)


def host_info() -> dict[str, str]:
    return {
        "hostname": platform.node(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class StageTimer:
    """Measures wall time of a stage and records the process's peak memory at the end."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.sections: dict[str, float] = {}

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.sections[name] = round(time.perf_counter() - t0, 3)

    def summary(self) -> dict[str, Any]:
        return {
            "wall_seconds": round(time.perf_counter() - self.start, 3),
            "sections_seconds": dict(self.sections),
            "peak_rss_mb": peak_rss_mb(),
        }
