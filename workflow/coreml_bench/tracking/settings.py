"""Section ``tracking``: where the MLflow mirror of results/ lives."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from ..schema_base import StrictModel

# MLflow tracking URIs: a database, a tracking server, a file store, or a managed service.
URI_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks")


class TrackingSettings(StrictModel):
    enabled: bool = True
    uri: str = Field(
        default="sqlite:///results/mlflow/mlflow.db",
        description=f"MLflow tracking URI: {', '.join(URI_SCHEMES)} (a server URI on a cluster)",
    )
    log_packages: bool = Field(default=True, description="upload each .mlpackage as an artifact")

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri: str) -> str:
        match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://\S+$", uri)
        scheme = match.group(1).split("+")[0].lower() if match else None
        if scheme not in URI_SCHEMES:
            raise ValueError(
                f"not an MLflow tracking URI: it must start with one of "
                f"{', '.join(s + '://' for s in URI_SCHEMES)} and hold no spaces"
            )
        return uri
