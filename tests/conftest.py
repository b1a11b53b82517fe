"""Shared fixtures (helpers shared by test modules are in helpers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import ROOT, SMALL_CONFIG, run_snakemake, write_config

if TYPE_CHECKING:
    import torch


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


@pytest.fixture(scope="session")
def small_study_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SMALL_CONFIG run once through the workflow. Its tables as first published are kept in
    ``pristine/`` (tests/test_workflow.py goes on to change the run)."""
    import shutil

    workdir = tmp_path_factory.mktemp("workflow")
    write_config(workdir, SMALL_CONFIG)
    run_snakemake(workdir)
    (workdir / "pristine").mkdir()
    shutil.copy(workdir / "results/tables/summary.csv", workdir / "pristine/summary.csv")
    return workdir


# Real packages several test modules read (reference_packages caches one build per session).


@pytest.fixture(scope="session")
def lite0(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """EfficientNet-Lite0 with its published weights and its fp16 package."""
    import reference_packages

    return reference_packages.lite0(tmp_path_factory)


@pytest.fixture(scope="session")
def imagenet20() -> tuple[torch.Tensor, torch.Tensor]:
    """The 20 real ImageNet validation images shipped in foolbox, with their labels."""
    import reference_packages

    return reference_packages.imagenet20()


@pytest.fixture(scope="session")
def mnv3(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """A seeded MobileNetV3-Small with non-trivial BatchNorm statistics, and its package."""
    import reference_packages

    return reference_packages.mnv3(tmp_path_factory)


@pytest.fixture(scope="session")
def mnv3_k4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """That MobileNetV3-Small palettized to 4 bits."""
    import reference_packages

    return reference_packages.mnv3_k4(tmp_path_factory)
