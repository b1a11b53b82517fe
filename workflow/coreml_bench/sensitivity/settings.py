"""Config section ``sensitivity``: which compression settings are measured one weight tensor
at a time, on which models, and on what calibration data."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..schema_base import Identifier, StrictModel

Measure = Literal["kl", "top1_drop", "agreement_drop"]


class CalibrationSettings(StrictModel):
    """The calibration split: each evaluation image seen as several deterministic views.

    View 0 is the evaluation crop itself; views 1.. are seeded random-resized crops with
    flips (the training augmentation). Twenty images are too few to rank layers by top-1
    (one image is 5 points); their views give an output measure (KL) enough samples, and
    the same split also calibrates activation ranges (W8A8).
    """

    views_per_image: int = Field(default=4, ge=1, le=64)
    seed: int = Field(default=0, ge=0)
    limit: int | None = Field(
        default=None, ge=1, description="evaluation images to take views of; default: all"
    )
    batch_size: int = Field(default=16, ge=1, le=1024)


class SensitivitySettings(StrictModel):
    """Per-layer sensitivity (``sensitivity.*``): each listed Core ML-side experiment is
    applied to one weight tensor at a time, through the executor, against the fp16 package.

    Experiments a ``mixed_precision`` search draws from are measured too, listed or not.
    """

    experiments: list[Identifier] = Field(
        default_factory=list, description="Core ML-side experiment ids to measure per layer"
    )
    models: list[str] | None = Field(default=None, description="model ids; default: all")
    calibration: CalibrationSettings = CalibrationSettings()

    def applies_to(self, model_id: str) -> bool:
        return self.models is None or model_id in self.models
