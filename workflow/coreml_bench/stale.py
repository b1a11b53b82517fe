"""`coreml-bench stale`: the results made with other code or another environment than today's.

Every record a compute job writes carries its stage's ``provenance`` (code fingerprint,
environment and its fingerprint, git commit; see :mod:`coreml_bench.fingerprint`). A code
edit reruns its stage's jobs by itself (the fingerprint is in the rules' params); an
environment change does not — a dependency bump must not silently rerun a week of
fine-tuning — so this lists both, with what changed, and ``--rerun`` reruns exactly those
jobs (``snakemake --forcerun <their records>``; their dependants follow).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .fingerprint import code_fingerprint, environment, stage_roots
from .integrity import _records
from .io import RecordError, read_json

# Records of these stages are the mirror or the gate's verdict, re-derived from the others.
DERIVED = frozenset({"track", "check"})


@dataclass(frozen=True)
class StaleRecord:
    path: Path
    stage: str
    reasons: tuple[str, ...]

    def line(self) -> str:
        return f"{self.path}  [{self.stage}]  " + "; ".join(self.reasons)


def _environment_changes(recorded: dict[str, str], today: dict[str, str]) -> list[str]:
    return [
        f"{name} {recorded.get(name, 'absent')} -> {today.get(name, 'absent')}"
        for name in sorted(set(recorded) | set(today))
        if recorded.get(name) != today.get(name)
    ]


def find_stale(results: Path) -> list[StaleRecord]:
    """Every compute record under ``results`` whose code or environment is not today's."""
    known = stage_roots()
    stale: list[StaleRecord] = []
    for path in _records(results):
        try:
            record = read_json(path)
        except RecordError as error:
            stale.append(StaleRecord(path, "unknown", (f"unreadable: {error}",)))
            continue
        if not isinstance(record, dict) or record.get("stage") in DERIVED:
            continue
        provenance = record.get("provenance")
        if not isinstance(provenance, dict):
            reasons = ("no code/environment fingerprint (made before they were recorded)",)
            stale.append(StaleRecord(path, str(record.get("stage", "unknown")), reasons))
            continue
        stage = str(provenance.get("stage"))
        if stage not in known:
            stale.append(StaleRecord(path, stage, (f"stage {stage!r} no longer exists",)))
            continue
        reasons = []
        if provenance.get("code_fingerprint") != code_fingerprint(stage):
            reasons.append("code changed since it ran")
        changes = _environment_changes(provenance.get("environment") or {}, environment(stage))
        if changes:
            reasons.append("environment: " + ", ".join(changes))
        if reasons:
            stale.append(StaleRecord(path, stage, tuple(reasons)))
    return stale


def rerun_command(
    stale: Sequence[StaleRecord], results: Path, snakemake_args: Sequence[str]
) -> list[str]:
    """``snakemake --forcerun`` of exactly the stale records' jobs.

    Snakemake names outputs relative to its working directory, the folder ``results`` is in.
    """
    snakemake = Path(sys.executable).with_name("snakemake")
    program = str(snakemake) if snakemake.exists() else "snakemake"
    workdir = Path(results).resolve().parent
    targets = [os.path.relpath(Path(s.path).resolve(), workdir) for s in stale]
    return [program, *snakemake_args, "--forcerun", *targets]


def rerun(stale: Sequence[StaleRecord], results: Path, snakemake_args: Sequence[str]) -> int:
    if not stale:
        return 0
    command = rerun_command(stale, results, snakemake_args)
    print("+ " + " ".join(command), file=sys.stderr)
    return subprocess.run(command, check=False).returncode
