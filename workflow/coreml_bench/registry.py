"""A tiny name → entry registry; one instance each for models, algorithms, evaluators, profilers."""

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
