"""Section ``tracking``: where the MLflow mirror of results/ lives."""

from __future__ import annotations

from pydantic import Field

from ..schema_base import StrictModel


class TrackingSettings(StrictModel):
    enabled: bool = True
    uri: str = Field(default="sqlite:///results/mlflow/mlflow.db")
    log_packages: bool = Field(default=True, description="upload each .mlpackage as an artifact")
