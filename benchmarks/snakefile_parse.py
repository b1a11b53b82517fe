"""How long `snakemake -n` takes to read the Snakefile, and what it imports while doing so.

For each shipped config that plans offline: the median wall time of `snakemake -n --quiet`
over 3 runs, the time Python spends importing coreml_bench (``-X importtime``), and whether
torch, coremltools or mlflow were imported (they must not be: every cluster node re-reads
the Snakefile). Writes benchmarks/snakefile_parse.md.

    .venv/bin/python benchmarks/snakefile_parse.py [--repo OTHER_CHECKOUT --label NAME]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _report import write_keeping_notes

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "snakefile_parse.md"
CONFIGS = ("config.yaml", "fashion-mnist.yaml", "random-weights.yaml", "remote-mac.yaml")
HEAVY = ("torch", "coremltools", "mlflow", "torchvision", "timm", "pandas", "matplotlib")
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)$")


def dry_run(repo: Path, config: Path, importtime: bool) -> tuple[float, str]:
    command = [sys.executable]
    if importtime:
        command += ["-X", "importtime"]
    command += ["-m", "snakemake", "-n", "--quiet", "--cores", "2", "--snakefile"]
    # From the checkout's root, as a user runs it (relative data paths resolve there).
    command += [str(repo / "Snakefile"), "--configfile", str(config)]
    t0 = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=repo)
    return time.perf_counter() - t0, result.stderr


def imports(stderr: str) -> tuple[float, list[str]]:
    """(seconds importing coreml_bench, heavy top-level packages imported)."""
    ours = 0
    heavy = set()
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if not match:
            continue
        cumulative, depth, name = int(match.group(2)), len(match.group(3)), match.group(4)
        if name == "coreml_bench" or (name.startswith("coreml_bench.") and depth == 1):
            ours += cumulative
        if name.split(".")[0] in HEAVY:
            heavy.add(name.split(".")[0])
    return ours / 1e6, sorted(heavy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--label", default="this checkout")
    args = parser.parse_args()
    rows = []
    for name in CONFIGS:
        config = args.repo / "config" / name
        if not config.exists():
            continue
        walls = [dry_run(args.repo, config, False)[0] for _ in range(3)]
        _wall, stderr = dry_run(args.repo, config, True)
        ours, heavy = imports(stderr)
        rows.append((name, statistics.median(walls), ours, heavy))
    lines = [
        "# Snakefile parse: time and imports",
        "",
        "`snakemake -n --quiet` from a fresh process, median of 3 runs, on this machine "
        f"(2 cores); {args.label}. `coreml_bench import` is the cumulative `-X importtime` of "
        "the package; `heavy imports` lists torch, coremltools, mlflow, torchvision, timm, "
        "pandas or matplotlib if the parse imported them.",
        "",
        "Rerun: `.venv/bin/python benchmarks/snakefile_parse.py`",
        "",
        "| config | snakemake -n (s) | coreml_bench import (s) | heavy imports |",
        "| --- | --- | --- | --- |",
    ]
    for name, wall, ours, heavy in rows:
        lines.append(f"| {name} | {wall:.2f} | {ours:.3f} | {', '.join(heavy) or 'none'} |")
    write_keeping_notes(OUT, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
