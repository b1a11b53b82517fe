"""The name → entry registry every backend, algorithm and data kind is listed in."""

from __future__ import annotations

import pytest
from coreml_bench.registry import Registry


def test_registry_rejects_duplicates_and_names_unknowns() -> None:
    registry: Registry[int] = Registry("widget")
    registry.add("a", 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("a", 2)
    with pytest.raises(KeyError, match="unknown widget 'b'; known: a"):
        registry["b"]
