"""Section ``evaluation``: which evaluator measures accuracy, and on which torch device."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..schema_base import StrictModel, registry_name
from .registry import EVALUATORS

TorchDevice = Literal["cpu", "cuda"]


class EvaluationSettings(StrictModel):
    backend: registry_name(EVALUATORS, also=("auto",)) = Field(  # type: ignore[valid-type]
        default="auto", description="auto: coreml on macOS, mil-torch elsewhere"
    )
    device: TorchDevice = Field(
        default="cpu", description="where the mil-torch executor runs (cuda: an NVIDIA GPU)"
    )
