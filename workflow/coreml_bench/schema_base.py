"""Shared pydantic building blocks for the config tree."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

# Ids become wildcard values and path components: keep them to a safe, portable alphabet.
SAFE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Identifier = Annotated[str, StringConstraints(pattern=SAFE_ID_PATTERN)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class StrictModel(BaseModel):
    """Base for every config node: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
