"""The evaluator registry: what 'auto' means on each platform, and devices refused clearly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from coreml_bench.config import validate_config
from coreml_bench.evaluate import resolve_evaluator
from coreml_bench.executor import ProgramExecutor


def test_auto_backends_depend_on_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    assert resolve_evaluator("auto")[0] == "mil-torch"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert resolve_evaluator("auto")[0] == "coreml"
    assert resolve_evaluator("weights-torch")[0] == "weights-torch"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is what a CPU machine sees")
def test_cuda_device_is_refused_clearly_without_a_gpu(tmp_path: Path) -> None:
    cfg = validate_config({"evaluation": {"device": "cuda"}})
    assert cfg.evaluation.device == "cuda"
    with pytest.raises(RuntimeError, match="no CUDA device"):
        ProgramExecutor(tmp_path / "x.mlpackage", device="cuda")
