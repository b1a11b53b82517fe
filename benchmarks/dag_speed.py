"""DAG speed at scale: `snakemake -n` for the full paper and for a ~5,000-job config, our cost
per job beyond Snakemake's own, and what each cluster job pays before its rule starts.

- `config/paper.yaml` (target < 3 s wall).
- A generated 5 models × 111 post-training experiments × 3 trials config (~5,000 jobs),
  beside a bare Snakefile with the same rules, wildcards and job count but no logic: the
  difference per job is our cost (target ≤ 2 ms CPU per job).
- Per-job start-up: a cluster job re-reads the Snakefile (the quickstart config's parse)
  and then imports the job adapter (``coreml_bench.jobs``) before its stage starts.

CPU time is user + system of the child process (``resource.RUSAGE_CHILDREN``), median of 3.
Writes benchmarks/dag_speed.md.

    .venv/bin/python benchmarks/dag_speed.py
"""

from __future__ import annotations

import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _report import write_keeping_notes

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "dag_speed.md"
MODELS = ("mobilenet_v2", "mobilenet_v3_small", "resnet50", "resnet18", "resnet34")
TRIALS = 3
RUNS = 3

BARE_SNAKEFILE = '''
configfile: "config.yaml"
T = range(1, config["trials"] + 1)
V = [(m, e, t) for m in config["models"] for e in config["experiments"] for t in T]

rule all:
    input: "results/summary.csv"

rule convert:
    output: "results/converted/{model}.txt"
    params: p=lambda wc: {"model": wc.model}
    shell: "touch {output}"

rule compress:
    input: "results/converted/{model}.txt"
    output: "results/compressed/{model}/{experiment}/trial{trial}.txt"
    params: p=lambda wc: {"experiment": wc.experiment}
    shell: "touch {output}"

rule evaluate:
    input: "results/compressed/{model}/{experiment}/trial{trial}.txt"
    output: "results/evaluation/{model}/{experiment}/trial{trial}.json"
    params: p=lambda wc: {"data": 1}
    shell: "touch {output}"

rule profile:
    input: "results/compressed/{model}/{experiment}/trial{trial}.txt"
    output: "results/profile/{model}/{experiment}/trial{trial}.json"
    params: p=lambda wc: {"runs": 1}
    shell: "touch {output}"

rule aggregate:
    input:
        [f"results/evaluation/{m}/{e}/trial{t}.json" for m, e, t in V],
        [f"results/profile/{m}/{e}/trial{t}.json" for m, e, t in V],
    output: "results/summary.csv"
    shell: "touch {output}"
'''


def large_config(experiments: int) -> dict:
    return {
        "study": "dag-5000",
        "models": [
            {"id": m.replace("_", "-"), "architecture": m, "source": {"kind": "random", "seed": 0}}
            for m in MODELS
        ],
        "experiments": [{"id": "fp16", "compression": {"algorithm": "none"}}]
        + [
            {
                "id": f"prune-{i:03d}",
                "label": f"Sparsity {i / 10:.1f} per mille",
                "trials": TRIALS,
                "compression": {"algorithm": "prune_magnitude", "target_sparsity": i / 1000},
            }
            for i in range(1, experiments)
        ],
        "tracking": {"log_packages": False},
    }


def timed(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall s, child CPU s, output) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.stdout + result.stderr


def jobs_of(output: str) -> int:
    match = re.search(r"^total\s+(\d+)$", output, re.M)
    return int(match.group(1)) if match else 0


def median_run(command: list[str], cwd: Path) -> tuple[float, float, int]:
    runs = [timed(command, cwd) for _ in range(RUNS)]
    return (
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
        jobs_of(runs[0][2]),
    )


def snakemake(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-n", "--cores", "2", *args]


def main() -> None:
    rows = []
    paper = median_run(snakemake("--configfile", "config/paper.yaml"), ROOT)
    rows.append(("config/paper.yaml (all 33 seed rows)", *paper))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = large_config(experiments=111)
        (work / "large.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        ours = median_run(snakemake("--configfile", str(work / "large.yaml")), ROOT)
        rows.append(("5 models × 111 experiments × 3 trials", *ours))
        bare_dir = work / "bare"
        bare_dir.mkdir()
        (bare_dir / "Snakefile").write_text(BARE_SNAKEFILE)
        (bare_dir / "config.yaml").write_text(
            yaml.safe_dump(
                {
                    "models": list(MODELS),
                    "experiments": [e["id"] for e in config["experiments"]],
                    "trials": TRIALS,
                }
            )
        )
        bare = median_run(snakemake(), bare_dir)
        rows.append(("bare Snakefile, same shape (Snakemake's own cost)", *bare))
        quick = median_run(snakemake("--quiet"), ROOT)
        job_import = statistics.median(
            timed(
                [sys.executable, "-c", "import sys; sys.path.insert(0, 'workflow'); "
                 "import coreml_bench.jobs"],
                ROOT,
            )[0]
            for _ in range(RUNS)
        )  # fmt: skip
    per_job_ms = (ours[1] - bare[1]) / max(1, ours[2]) * 1000
    lines = [
        "# DAG speed: `snakemake -n` at scale",
        "",
        f"Median of {RUNS} fresh `snakemake -n --cores 2` runs on this machine (2 cores). CPU is "
        "user + system of the process. Rerun: `.venv/bin/python benchmarks/dag_speed.py`",
        "",
        "| plan | jobs | wall (s) | CPU (s) | CPU per job (ms) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, wall, cpu, jobs in rows:
        per_job = cpu / max(1, jobs) * 1000
        lines.append(f"| {name} | {jobs} | {wall:.2f} | {cpu:.2f} | {per_job:.2f} |")
    lines += [
        "",
        f"- Paper config: {paper[0]:.2f} s wall (target < 3 s): "
        f"**{'met' if paper[0] < 3 else 'missed'}**.",
        f"- Our cost beyond Snakemake's own at {ours[2]} jobs: ({ours[1]:.2f} − {bare[1]:.2f}) s "
        f"CPU / {ours[2]} jobs = **{per_job_ms:.2f} ms per job** (target ≤ 2 ms): "
        f"**{'met' if per_job_ms <= 2 else 'missed'}**.",
        f"- Per-job start-up on a cluster node: the Snakefile re-read for the job "
        f"(`snakemake -n --quiet`, quickstart config) {quick[0]:.2f} s wall, then importing "
        f"the job adapter `coreml_bench.jobs` {job_import:.2f} s, before the stage's own "
        "imports (torch, coremltools) and work.",
        "",
    ]
    write_keeping_notes(OUT, "\n".join(lines))


if __name__ == "__main__":
    main()
