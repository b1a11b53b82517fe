"""Shared fixtures (helpers shared by test modules are in helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ROOT


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def fashion_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real fp16 package of a small seeded network (what a published zip would hold)."""
    import torch
    from coreml_bench.convert import to_coreml
    from coreml_bench.models import build_model

    torch.manual_seed(0)
    package = tmp_path_factory.mktemp("pkg") / "FashionCNN.mlpackage"
    to_coreml(build_model("fashion_cnn", 10), 28, in_channels=1).save(str(package))
    return package
