"""The workflow through a real SLURM cluster (one node on 127.0.0.1, tests/cluster/slurm.py)
with the real profile (workflow/profiles/slurm, the test cluster's overlay after it), against
a local run of the same config: every compute job goes through sbatch, the local rules run
in the snakemake process, and both runs publish the same tables.

Skipped only where SLURM is not installed or the test is not root; with CI set, that fails.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cluster.slurm import SLURM_CONF, local_slurm, unavailable
from helpers import ROOT, SMALL_CONFIG, snakemake_command, write_config

# The study tests/test_workflow.py runs locally (conftest's small_study_run) less its k-means
# row (the slowest job): its other rows are what the SLURM run must reproduce.
CONFIG = {
    **SMALL_CONFIG,
    "experiments": [e for e in SMALL_CONFIG["experiments"] if e["id"] != "kmeans"],
}
# Jobs of these rules go through sbatch; the others run in the snakemake process.
COMPUTE_RULES = {
    "download_weights", "convert", "compress", "compile_program", "evaluate", "profile"
}  # fmt: skip
LOCAL_RULES = {"track", "aggregate", "publish_tables", "reference_report", "all"}
PROFILES = ["workflow/profiles/slurm", "workflow/profiles/slurm-local"]

JOB_HEADER = re.compile(r"^(local)?rule (\w+):$")
JOB_ID = re.compile(r"^\s+jobid: (\d+)$")
SUBMITTED = re.compile(r"^Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.$")


def slurm_command(workdir: Path) -> list[str]:
    """What a user types (docs/cluster.md), with the test cluster's overlay profile."""
    profiles = [arg for p in PROFILES for arg in ("--profile", str(ROOT / p))]
    return snakemake_command(workdir, "--executor", "slurm", *profiles)


def run_on_slurm(workdir: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    # Nothing of an enclosing SLURM job (or a custom SLURM_CONF) may leak into sbatch.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        slurm_command(workdir), capture_output=True, text=True, timeout=timeout, env=env,
        cwd=workdir,
    )  # fmt: skip


def jobs_in_log(log: str) -> dict[int, tuple[str, bool]]:
    """Snakemake job id → (rule, ran locally) from a run's log."""
    jobs, header = {}, None
    for line in log.splitlines():
        if match := JOB_HEADER.match(line):
            header = (match.group(2), bool(match.group(1)))
        elif header and (match := JOB_ID.match(line)):
            jobs[int(match.group(1))] = header
            header = None
    return jobs


def read_summary(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def is_timing(column: str) -> bool:
    """Columns holding measured times: host latency (ms), anything in seconds or 'time'."""
    name = column.lower()
    return "(ms)" in name or "(s)" in name or "time" in name or "seconds" in name


def test_workflow_on_slurm_matches_a_local_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_study_run: Path
) -> None:
    reason = unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM test: {reason}")
        pytest.skip(reason)
    monkeypatch.delenv("SLURM_CONF", raising=False)
    conf_before = SLURM_CONF.read_bytes() if SLURM_CONF.exists() else None

    slurm_dir = tmp_path / "slurm"
    write_config(slurm_dir, CONFIG)
    started = time.monotonic()
    with local_slurm() as cluster:
        result = run_on_slurm(slurm_dir)
        log = result.stdout + result.stderr
        assert result.returncode == 0, (
            f"snakemake on SLURM failed ({result.returncode}):\n{log[-8000:]}\n"
            f"{_slurm_logs(slurm_dir)}\n{cluster.logs()}"
        )
        states = _job_states()
        daemons = dict(cluster.processes)
    wall = time.monotonic() - started

    # The cluster is gone: exactly its daemons stopped, the conf as it was.
    assert all(p.poll() is not None for p in daemons.values()), cluster.running()
    assert not any(Path(f"/proc/{p.pid}").exists() for p in daemons.values())
    assert (SLURM_CONF.read_bytes() if SLURM_CONF.exists() else None) == conf_before

    # Every compute job went through sbatch and finished there, with its SLURM log; the local
    # rules ran in the snakemake process.
    jobs = jobs_in_log(log)
    submitted = {int(m.group(1)): (m.group(2), Path(m.group(3))) for m in
                 map(SUBMITTED.match, log.splitlines()) if m}  # fmt: skip
    remote = {job for job, (_, local) in jobs.items() if not local}
    assert remote == set(submitted), (sorted(remote), sorted(submitted))
    assert {jobs[job][0] for job in remote} == COMPUTE_RULES
    assert {rule for rule, local in jobs.values() if local} == LOCAL_RULES
    for job, (slurm_id, slurm_log) in submitted.items():
        rule = jobs[job][0]
        assert states.get(slurm_id) == "COMPLETED", (rule, slurm_id, states)
        assert slurm_log.is_relative_to(slurm_dir / ".snakemake/slurm_logs" / f"rule_{rule}")
        assert slurm_log.stat().st_size > 0, slurm_log
    assert len(submitted) == 13  # download, convert, 2 compress, 3 compile, 3 evaluate, 3 profile
    logged_rules = {p.name for p in (slurm_dir / ".snakemake/slurm_logs").iterdir()}
    assert logged_rules == {f"rule_{rule}" for rule in COMPUTE_RULES}

    # Same tables: every column exactly, except measured times.
    header, slurm_rows = read_summary(slurm_dir / "results/tables/summary.csv")
    local_header, local_rows = read_summary(small_study_run / "pristine/summary.csv")
    labels = {row["Config"] for row in slurm_rows}
    local_rows = [row for row in local_rows if row["Config"] in labels]
    assert header == local_header
    timing = [c for c in header if is_timing(c)]
    assert timing == ["Latency (ms)"], timing
    assert "Compression Ratio" in header and "Size (MB)" in header and "Accuracy" in header
    assert len(slurm_rows) == len(CONFIG["experiments"])
    for slurm_row, local_row in zip(slurm_rows, local_rows, strict=True):
        assert {c: slurm_row[c] for c in header if c not in timing} == {
            c: local_row[c] for c in header if c not in timing
        }
        assert float(slurm_row["Latency (ms)"]) > 0 and float(local_row["Latency (ms)"]) > 0
    print(f"SLURM run, cluster up and down: {wall:.0f} s")


def _job_states() -> dict[str, str]:
    """SLURM job id → state of every job the test cluster still knows (MinJobAge=600)."""
    out = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i|%T"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return dict(line.split("|", 1) for line in out.split())


def _slurm_logs(workdir: Path, tail: int = 3000) -> str:
    parts = []
    for path in sorted((workdir / ".snakemake/slurm_logs").rglob("*.log")):
        parts.append(f"--- {path.relative_to(workdir)} ---\n{path.read_text()[-tail:]}")
    return "\n".join(parts)
