"""Section ``reference``: the published figures a run is gated against, and how strictly.

A configured row (model × experiment) reproduces the published row with the same model name
(the model's display name, e.g. ``MobileNetv2-1.0``), config (the experiment's label, e.g.
``2 bit``) and optimization workflow (the algorithm's). The gate itself is
``reference/gate.py``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..reference.published import DEFAULT_PUBLISHED, Workflow
from ..schema_base import Identifier, StrictModel


class PublishedKey(StrictModel):
    """Which published row a configured row stands for, where its own labels differ."""

    config: str = Field(min_length=1, description="the published Config column, e.g. '2 bit'")
    workflow: Workflow = Field(description="the published workflow, e.g. 'Training Time'")
    why: str = Field(
        min_length=10,
        description="why this experiment may be judged against that row (shown in the report)",
    )


class ReferenceRow(StrictModel):
    """Per-row settings: other tolerances, a documented expected failure, or the published row
    an experiment stands for (e.g. a one-shot compression for a training-time row's ratio)."""

    model: Identifier | None = Field(
        default=None, description="a model id of this config; default: every model"
    )
    experiment: Identifier = Field(description="an experiment id of this config")
    stands_for: PublishedKey | None = None
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

    def rows_for(self, model: str, experiment: str) -> list[ReferenceRow]:
        return [
            row for row in self.rows if row.experiment == experiment and row.model in (None, model)
        ]

    def published_path(self) -> Path:
        return self.published or DEFAULT_PUBLISHED
