"""Shared pydantic building blocks for every settings model and the config tree."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from .registry import Registry

# Ids become wildcard values and path components: keep them to a safe, portable alphabet.
SAFE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Identifier = Annotated[str, StringConstraints(pattern=SAFE_ID_PATTERN)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def accepts_bool(annotation: Any) -> bool:
    """Whether a field of this type may hold True/False (bool, Any, or a union with either)."""
    if annotation is bool or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return accepts_bool(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(accepts_bool(arg) for arg in typing.get_args(annotation))
    if origin is Literal:
        return any(isinstance(arg, bool) for arg in typing.get_args(annotation))
    return False


class StrictModel(BaseModel):
    """Base for every config node: unknown keys are errors, values are immutable, and a YAML
    boolean never stands in for a number or a name (pydantic would read ``true`` as 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_boolean_for_other_types(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name) if isinstance(name, str) else None
                if isinstance(value, bool) and field and not accepts_bool(field.annotation):
                    raise ValueError(
                        f"{name}: expected {_type_name(field.annotation)}, got a boolean "
                        f"({value!r}); YAML reads yes/no/true/false as booleans"
                    )
        return data


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


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is Annotated:
        return _type_name(typing.get_args(annotation)[0])
    return getattr(annotation, "__name__", str(annotation))
