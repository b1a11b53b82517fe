"""Config errors: every message names the field path and the (bounded) value."""

from __future__ import annotations

import reprlib
from typing import Any

from pydantic import ValidationError

# A value echoed in an error is cut to this many characters (a YAML alias bomb expands a few
# hundred bytes into millions of leaves; the message must stay one readable paragraph).
MAX_ECHO = 200


class ConfigError(ValueError):
    """Invalid config: the message names every offending field path and value."""


_REPR = reprlib.Repr()  # Python 3.11's Repr takes its limits as attributes
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple = 3, 8, 8, 8
_REPR.maxstring, _REPR.maxother = 120, 120


def echo(value: Any) -> str:
    """A bounded ``repr(value)``: nested containers are elided before they are expanded."""
    text = _REPR.repr(value)
    return text if len(text) <= MAX_ECHO else f"{text[:MAX_ECHO]}..."


def format_location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def format_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = format_location(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["loc"]:
            lines.append(f"  {where}: {message} (got {echo(item.get('input'))})")
        else:
            lines.append(f"  {message}")
    return "invalid config:\n" + "\n".join(lines)
