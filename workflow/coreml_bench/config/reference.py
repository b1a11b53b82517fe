"""Section ``reference``: the published figures a run is gated against, and how strictly.

A configured row (model × experiment) reproduces the published row with the same model name
(the model's display name, e.g. ``MobileNetv2-1.0``), config (the experiment's label, e.g.
``2 bit``) and optimization workflow (the algorithm's). The gate itself is
``reference/gate.py``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..reference.published import DEFAULT_PUBLISHED
from ..schema_base import Identifier, StrictModel


class ReferenceRow(StrictModel):
    """Per-row settings: other tolerances, or a documented expected failure."""

    model: Identifier = Field(description="a model id of this config")
    experiment: Identifier = Field(description="an experiment id of this config")
    ratio_tolerance: float | None = Field(default=None, gt=0, lt=1)
    accuracy_tolerance_pp: float | None = Field(default=None, gt=0, le=100)
    expected_failure: str | None = Field(
        default=None,
        min_length=10,
        description="why this row is known to miss the published figure (it then fails as "
        "expected; if it passes, the gate says so)",
    )


class ReferenceSettings(StrictModel):
    enabled: bool = Field(
        default=True,
        description="write the reference report where a model has published rows",
    )
    published: Path | None = Field(
        default=None,
        description="CSV of published figures (columns: reference/published.py); default: the "
        "seed tables' transcription shipped with the workflow",
    )
    ratio_tolerance: float = Field(
        default=0.03, gt=0, lt=1, description="compression ratio: relative, either side"
    )
    accuracy_tolerance_pp: float = Field(
        default=0.5, gt=0, le=100, description="accuracy: percentage points, either side"
    )
    rows: list[ReferenceRow] = Field(default_factory=list)

    def published_path(self) -> Path:
        return self.published or DEFAULT_PUBLISHED
