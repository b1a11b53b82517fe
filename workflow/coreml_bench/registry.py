"""A tiny name → entry registry (architectures, algorithms, evaluators, profilers, data kinds),
the platform check every backend shares, and the plugin loader."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to an entry; unknown names raise a KeyError that lists what exists."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorator(entry: T) -> T:
            return self.add(name, entry)

        return decorator

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())


class BackendUnavailableError(RuntimeError):
    """The chosen backend cannot run on this host (e.g. Core ML predictions off macOS)."""


def require_platform(
    kind: str, name: str, platforms: tuple[str, ...] | None, fallback: str
) -> None:
    """Refuse clearly, before any work, when a backend cannot run on this host."""
    if platforms is not None and sys.platform not in platforms:
        raise BackendUnavailableError(
            f"{kind} {name!r} needs {'/'.join(platforms)}; this host is {sys.platform}. "
            f"Use backend 'auto' or {fallback!r}."
        )


def resolve_auto(requested: str, *, on_macos: str, elsewhere: str) -> str:
    """A backend name; 'auto' picks Core ML on macOS and this project's own runtime elsewhere."""
    if requested != "auto":
        return requested
    return on_macos if sys.platform == "darwin" else elsewhere


def resolve_backend(
    registry: Registry[T], requested: str, *, on_macos: str, elsewhere: str
) -> tuple[str, T]:
    """(name, entry) of the backend to use here ('auto' resolved); refuses, naming the
    alternative, one this platform cannot run. Entries carry ``platforms``."""
    name = resolve_auto(requested, on_macos=on_macos, elsewhere=elsewhere)
    entry = registry[name]
    require_platform(registry.kind, name, getattr(entry, "platforms", None), elsewhere)
    return name, entry


PLUGINS_ENV = "COREML_BENCH_PLUGINS"


def load_plugins() -> list[str]:
    """Import the modules named in $COREML_BENCH_PLUGINS (comma-separated), once each.

    A plugin module registers entries (architectures, algorithms, evaluators, profilers,
    data kinds) with the registries' ``add``; the config schema, built after this, then
    accepts them like built-in entries. Called by the config package and the job entry point
    before anything reads a registry.
    """
    import importlib
    import os

    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    for name in names:
        importlib.import_module(name)
    return names
