"""The building blocks of every settings model: booleans never stand in for numbers, and a
registry name field follows its registry."""

from __future__ import annotations

from typing import Literal

import pytest
from coreml_bench.registry import Registry
from coreml_bench.schema_base import StrictModel, accepts_bool, registry_name
from pydantic import ValidationError


def test_accepts_bool_reads_unions_literals_and_annotated() -> None:
    assert accepts_bool(bool) and accepts_bool(bool | None)
    assert not accepts_bool(int) and not accepts_bool(int | None)
    assert not accepts_bool(Literal[1, 2]) and accepts_bool(Literal[True, "x"])


def test_registry_name_checks_and_enumerates_what_is_registered_now() -> None:
    things: Registry[str] = Registry("thing")
    things.add("a", "A")

    class Settings(StrictModel):
        name: registry_name(things, also=("auto",)) = "auto"  # type: ignore[valid-type]
        count: int = 1

    assert Settings(name="a").name == "a"
    with pytest.raises(ValidationError, match="unknown thing 'b'; known: auto, a"):
        Settings(name="b")
    things.add("b", "B")  # a plugin registering later
    assert Settings(name="b").name == "b"
    assert Settings.model_json_schema()["properties"]["name"]["enum"] == ["auto", "a", "b"]
    with pytest.raises(ValidationError, match="count: expected int, got a boolean"):
        Settings(count=True)
