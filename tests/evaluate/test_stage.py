"""Stage evaluate: a backend this host cannot run is refused before any work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from coreml_bench.config import ModelConfig
from coreml_bench.data import DataSelection
from coreml_bench.data.kinds import FoolboxSampleData
from coreml_bench.evaluate.stage import evaluate_package
from coreml_bench.registry import BackendUnavailableError


@pytest.mark.skipif(sys.platform == "darwin", reason="the boundary is what Linux sees")
def test_coreml_backends_refuse_clearly_off_macos(tmp_path: Path) -> None:
    model = ModelConfig.model_validate(
        {"id": "m", "architecture": "fashion_cnn", "source": {"kind": "random"}}
    ).spec()
    with pytest.raises(BackendUnavailableError, match="needs darwin"):
        evaluate_package(
            package=tmp_path / "x.mlpackage",
            weights=tmp_path / "w.pth",
            model=model,
            data=DataSelection(source=FoolboxSampleData()),
            backend="coreml",
            output=tmp_path / "out.json",
            context={},
        )
    assert not (tmp_path / "out.json").exists()
