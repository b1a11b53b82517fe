"""The profiler registry: what 'auto' means on each platform, the latency statistics, and
devices refused clearly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from coreml_bench.config import validate_config
from coreml_bench.profile import PROFILERS, resolve_profiler
from coreml_bench.profile.registry import latency_stats


def test_auto_backends_depend_on_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    assert resolve_profiler("auto")[0] == "host"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert resolve_profiler("auto")[0] == "coreml"


def test_latency_stats() -> None:
    stats = latency_stats([5.0, 1.0, 2.0, 3.0, 4.0, 10.0, 6.0, 7.0, 8.0, 9.0, 11.0])
    assert stats["latency_median_ms"] == 6.0
    assert stats["latency_p90_ms"] == 10.0
    assert stats["latency_min_ms"] == 1.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is what a CPU machine sees")
def test_cuda_device_is_refused_clearly_without_a_gpu(tmp_path: Path) -> None:
    cfg = validate_config({"profiling": {"device": "cuda"}})
    assert cfg.profiling.device == "cuda"
    with pytest.raises(RuntimeError, match="no CUDA device"):
        PROFILERS["host"].measure(tmp_path / "x.mlpackage", cfg.profiling.latency_run())
