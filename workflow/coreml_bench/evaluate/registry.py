"""The evaluator registry: how the accuracy of a package is measured, with what it needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..models import ModelSpec
from ..registry import Registry, resolve_backend

Predictor = Callable[[Any], Any]  # batch tensor (N,C,H,W) -> output tensor (N,...)


@dataclass(frozen=True)
class Evaluator:
    """One evaluation backend.

    ``make_predictor(package, model, checkpoint or None, torch device)`` gives the batch
    predictor. ``needs_checkpoint``: it reads the model's torch checkpoint too (a published
    package has none). ``uses_device``: it runs on ``evaluation.device`` (cpu/cuda).
    ``platforms``: the ``sys.platform`` values it runs on (None: anywhere).
    ``runs_program``: it runs the package's program with the executor, so the job takes the
    program compiled beside the package (rule compile_program).
    """

    make_predictor: Callable[[Path, ModelSpec, Path | None, str], Predictor]
    description: str
    platforms: tuple[str, ...] | None = None
    needs_checkpoint: bool = False
    uses_device: bool = False
    runs_program: bool = False


EVALUATORS: Registry[Evaluator] = Registry("evaluation backend")

# What 'auto' means, and what to suggest where a backend cannot run.
AUTO_ON_MACOS, AUTO_ELSEWHERE = "coreml", "mil-torch"


def resolve_evaluator(requested: str) -> tuple[str, Evaluator]:
    """(name, entry) of the backend to use here; refuses one this platform cannot run."""
    return resolve_backend(EVALUATORS, requested, on_macos=AUTO_ON_MACOS, elsewhere=AUTO_ELSEWHERE)
