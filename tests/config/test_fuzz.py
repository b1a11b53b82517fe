"""Every shipped config, mutated field by field (types, bounds, YAML oddities): each mutant is
either refused with a short error that names the field, within 5 s, or accepted - and then a
real `snakemake -n` plans it. Never a traceback, never a hang."""

from __future__ import annotations

import copy
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from coreml_bench.config import ConfigError, validate_config
from coreml_bench.config.files import parse_config_text
from helpers import ROOT, SNAKEMAKE

CONFIGS = sorted((ROOT / "config").glob("*.yaml"))
MUTATIONS: tuple[Any, ...] = (
    True, False, None, -1, 0, 10**12, 1.5, float("nan"), float("inf"), "", "yes", "x" * 300,
    "../../etc", [], {}, [1],
)  # fmt: skip
Path_ = tuple[str | int, ...]


def _leaves(node: Any, path: Path_ = ()) -> Iterator[Path_]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, (*path, index))
    if path:
        yield path


def _mutated(config: dict, path: Path_, value: Any) -> dict:
    mutant = copy.deepcopy(config)
    node = mutant
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return mutant


def _names(path: Path_) -> set[str]:
    """The ways an error may name this path or a field on it."""
    names = {str(part) for part in path if isinstance(part, str)}
    location = ""
    for part in path:
        location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else part)
        names.add(location)
    return names


@pytest.mark.parametrize("config_path", CONFIGS, ids=lambda p: p.name)
def test_mutated_configs_are_refused_clearly_or_planned(config_path: Path) -> None:
    config = parse_config_text(config_path.read_text(), str(config_path))
    accepted: list[dict] = []
    for path in _leaves(config):
        for value in MUTATIONS:
            mutant = _mutated(config, path, value)
            t0 = time.perf_counter()
            try:
                validate_config(mutant, coremltools_check=False)
            except ConfigError as error:
                message = str(error)
                assert time.perf_counter() - t0 < 5.0, (path, value)
                assert len(message) < 4000, (path, value, message[:500])
                assert any(name in message for name in _names(path)), (path, value, message)
                continue
            accepted.append(mutant)
    # A sample of what was accepted must also plan in a real dry run (offline configs only:
    # the paper configs need data that is not on this machine).
    offline = config_path.name in ("config.yaml", "fashion-mnist.yaml", "remote-mac.yaml")
    for mutant in random.Random(0).sample(accepted, min(3, len(accepted))) if offline else []:
        file = ROOT / ".snakemake" / f"fuzz-{config_path.stem}.yaml"
        file.parent.mkdir(exist_ok=True)
        file.write_text(yaml.safe_dump(mutant))
        planned = subprocess.run(
            [SNAKEMAKE, "-n", "--quiet", "--configfile", str(file)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert planned.returncode == 0, planned.stderr[-3000:]
        assert "Traceback" not in planned.stderr
