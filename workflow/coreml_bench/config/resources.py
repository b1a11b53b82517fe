"""Section ``training_resources``: what a training job asks the scheduler for."""

from __future__ import annotations

from pydantic import Field

from ..schema_base import StrictModel


class TrainingResources(StrictModel):
    """What a training job asks the scheduler for (Snakemake threads and resources)."""

    threads: int = Field(default=2, ge=1, le=256)
    mem_mb: int = Field(default=8000, gt=0, le=4_000_000)
    gpu: int = Field(default=0, ge=0, le=1, description="GPUs per training job (0 or 1)")
