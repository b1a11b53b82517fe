"""Reading a config file strictly: JSON or YAML, one mapping at the top, no duplicate keys,
no tags that construct objects, no templates.

Snakemake reads config files itself (JSON first, then YAML through yte); the Snakefile reads
each of them again through :func:`read_config_file`, so `coreml-bench check-config` and
`snakemake` accept and refuse the same files, case for case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, echo

# A top-level key that makes Snakemake evaluate the file as a yte template: Python code.
TEMPLATE_KEY = "__use_yte__"


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that repeats a key (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {echo(key)} (line {line}; first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _json_unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {echo(key)}")
        result[key] = value
    return result


def parse_config_text(text: str, where: str) -> dict[str, Any]:
    """The mapping in ``text`` (JSON or YAML); ConfigError naming ``where`` otherwise."""
    if "\x00" in text:
        raise ConfigError(f"{where}: holds NUL bytes; a config is a text file (JSON or YAML)")
    data: Any
    try:
        data = json.loads(text, object_pairs_hook=_json_unique)
    except ValueError as json_error:
        if "duplicate key" in str(json_error):
            raise ConfigError(f"{where}: {json_error}") from None
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as error:
            raise ConfigError(f"{where}: not valid YAML: {_yaml_message(error)}") from None
    if data is None:
        raise ConfigError(f"{where}: is empty (or only comments); a config is a mapping of keys")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: the top level must be a mapping of keys, got a {type(data).__name__} "
            f"({echo(data)})"
        )
    if TEMPLATE_KEY in data:
        raise ConfigError(
            f"{where}: {TEMPLATE_KEY} makes Snakemake run the file as a yte template (Python "
            "code); this workflow does not accept templates: write plain values"
        )
    return data


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping of a config file; ConfigError naming the file and what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: is not UTF-8 text (byte {error.start}); a config is JSON or YAML"
        ) from None
    return parse_config_text(text, str(path))


def _yaml_message(error: yaml.YAMLError) -> str:
    """PyYAML's message on one line, with the line and column it points at."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    text = f"{context}, {problem}" if context else str(problem)
    if "\t" in text or "found character '\\t'" in text:
        text += " (tabs cannot indent YAML; use spaces)"
    return " ".join(text.split()) + where
