"""Shared pydantic building blocks for every settings model and the config tree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from .registry import Registry

# Ids become wildcard values and path components: keep them to a safe, portable alphabet.
SAFE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Identifier = Annotated[str, StringConstraints(pattern=SAFE_ID_PATTERN)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class StrictModel(BaseModel):
    """Base for every config node: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def registry_name(
    registry: Registry[Any],
    *,
    also: tuple[str, ...] = (),
    where: Callable[[Any], bool] | None = None,
) -> Any:
    """A str field that takes the names of ``registry`` (plus ``also``, e.g. "auto").

    Checked against the registry when a value is validated, and listed as the JSON schema's
    enum when the schema is generated, so entries added by plugins count: the names are
    never written down a second time.
    """

    def names() -> list[str]:
        return [*also, *(n for n, e in registry.items() if where is None or where(e))]

    def check(value: str) -> str:
        if value not in names():
            raise ValueError(f"unknown {registry.kind} {value!r}; known: {', '.join(names())}")
        return value

    def enum(schema: dict[str, Any]) -> None:
        schema["enum"] = names()

    return Annotated[str, AfterValidator(check), Field(json_schema_extra=enum)]
