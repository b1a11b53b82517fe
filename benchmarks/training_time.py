"""Training-time compression on real data: the Fashion-MNIST study, run through the workflow.

Runs the real workflow on config/fashion-mnist.yaml (the workflow trains its fp32 baseline,
then compresses it post-training, with calibration and with fine-tuning, 3 trials per
training-time row), then writes benchmarks/training_time.md: the accuracy of every row (the
Core ML program executed by mil-torch on the 10,000 test images; mean ± std over trials), the
finalized torch model's accuracy beside it, compression ratios and per-job wall times.

    .venv/bin/python benchmarks/training_time.py [--workdir DIR] [--cores N]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import write_keeping_notes

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIG = ROOT / "config" / "fashion-mnist.yaml"
OUT = ROOT / "benchmarks" / "training_time.md"


def run(workdir: Path, cores: int) -> float:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(CONFIG.read_text())
    start = time.perf_counter()
    subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory",
         str(workdir), "--configfile", str(CONFIG), "--cores", str(cores), "--quiet", "rules"],
        check=True, env={"PATH": f"{BIN}:/usr/bin:/bin"},
    )  # fmt: skip
    return time.perf_counter() - start


def job_seconds(workdir: Path, experiment: str) -> str:
    """Summed wall time of the compress jobs of one experiment (all trials)."""
    total = 0.0
    for manifest in (workdir / "results/compressed").glob(f"*/{experiment}/*/manifest.json"):
        total += json.loads(manifest.read_text())["timing"]["wall_seconds"]
    return f"{total:.0f}" if total else "—"


def report(workdir: Path, wall: float | None) -> str:
    with open(workdir / "results/tables/summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    baseline = json.loads(next((workdir / "results/weights").glob("*.json")).read_text())
    experiments = [r["experiment"] for r in json.loads((workdir / ".experiments.json").read_text())]
    lines = [
        "# Training-time compression on Fashion-MNIST",
        "",
        f"Measured by `benchmarks/training_time.py` on {time.strftime('%Y-%m-%d')}, 2 cores, "
        f"CPU only{'' if wall is None else f', {wall / 60:.0f} min for the whole workflow run'}. "
        "Config: `config/fashion-mnist.yaml`. Accuracy: top-1 % of the compressed **Core ML "
        "program** (executed by the `mil-torch` backend) on the 10,000 Fashion-MNIST test "
        "images; training-time rows are mean ± sample std over their trials (data order "
        "differs per trial). 'Torch top-1' is the finalized torch model before conversion.",
        "",
        f"fp32 baseline (trained by the workflow, {len(baseline['history'])} epochs): "
        f"{baseline['history'][-1]['val_top1']:.2f} % top-1 (torch, fp32).",
        "",
        "| experiment | config | algorithm | workflow | ratio | accuracy | torch top-1 | trials "
        "| compress jobs (s) |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for experiment, row in zip(experiments, rows, strict=True):
        lines.append(
            f"| {experiment} | {row['Config']} | {row['Optimization Algorithm']} | "
            f"{row['Optimization Workflow']} | {row['Compression Ratio']} | {row['Accuracy']} | "
            f"{row['Torch Top-1'] or '—'} | {row['Trials']} | {job_seconds(workdir, experiment)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--report-only", action="store_true", help="reuse a finished workdir")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="coreml-bench-fashion-"))
    sys.path.insert(0, str(ROOT / "workflow"))
    from coreml_bench.config import load_config

    cfg = load_config(CONFIG)
    order = [{"experiment": e} for _m, e, t in cfg.variants() if t == 1]
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / ".experiments.json").write_text(json.dumps(order))
    wall = None if args.report_only else run(workdir, args.cores)
    write_keeping_notes(OUT, report(workdir, wall))


if __name__ == "__main__":
    main()
