"""Compression ratios of the five seed models (random weights) next to the seed tables.

Runs the real workflow on config/random-weights.yaml (MobileNetV2, MobileNetV3-small, ResNet50,
MobileViTv2, CenterNet-ResNet34 with seeded random weights: the ratio depends on the
architecture and the compression config, not on weight values) through every post-training
algorithm, then compares each manifest's ratios with the seed tables' values. Writes
benchmarks/compression_ratios.md.

    .venv/bin/python benchmarks/compression_ratios.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
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
OUT = ROOT / "benchmarks" / "compression_ratios.md"

# (model, experiment) -> (seed row, seed ratio). Seed rows from ../shared/seeds: palettization
# post-training 6/8 bit, linear 8-bit weight-only, and - compared with the one-shot variant of
# the same bits/sparsity - the training-time rows (2/4-bit palettization, 50/75 % sparsity):
# the ratio is fixed by the compression config, not by the fine-tuning.
TT = "(training time)"
SEED = {
    ("mobilenet_v2", "kmeans-8bit"): ("MobileNetv2-1.0 8 bit K-Means", 1.97),
    ("mobilenet_v2", "kmeans-6bit"): ("MobileNetv2-1.0 6 bit K-Means", 2.54),
    ("mobilenet_v2", "kmeans-4bit"): (f"MobileNetv2-1.0 4 bit DKM {TT}", 3.38),
    ("mobilenet_v2", "kmeans-2bit"): (f"MobileNetv2-1.0 2 bit DKM {TT}", 5.92),
    ("mobilenet_v2", "int8"): ("MobileNetv2-1.0 Weight-only", 1.92),
    ("mobilenet_v2", "prune-50"): (f"MobileNetv2-1.0 Sparsity 50% {TT}", 1.37),
    ("mobilenet_v2", "prune-75"): (f"MobileNetv2-1.0 Sparsity 75% {TT}", 1.73),
    ("mobilenet_v3_small", "kmeans-8bit"): ("MobileNetv3-small 8 bit K-Means", 1.93),
    ("mobilenet_v3_small", "kmeans-6bit"): ("MobileNetv3-small 6 bit K-Means", 2.60),
    ("mobilenet_v3_small", "kmeans-4bit"): (f"MobileNetv3-small 4 bit DKM {TT}", 3.47),
    ("mobilenet_v3_small", "kmeans-2bit"): (f"MobileNetv3-small 2 bit DKM {TT}", 5.82),
    ("mobilenet_v3_small", "prune-50"): (f"MobileNetv3-small Sparsity 50% {TT}", 1.73),
    ("mobilenet_v3_small", "prune-75"): (f"MobileNetv3-small Sparsity 75% {TT}", 3.06),
    ("resnet50", "kmeans-8bit"): ("ResNet50 8 bit K-Means", 1.99),
    ("resnet50", "kmeans-6bit"): ("ResNet50 6 bit K-Means", 2.65),
    ("resnet50", "kmeans-4bit"): (f"ResNet50 4 bit DKM {TT}", 3.90),
    ("resnet50", "kmeans-2bit"): (f"ResNet50 2 bit DKM {TT}", 7.63),
    ("resnet50", "int8"): ("ResNet50 Weight-only", 1.99),
    ("resnet50", "prune-50"): (f"ResNet50 Sparsity 50% {TT}", 1.77),
    ("resnet50", "prune-75"): (f"ResNet50 Sparsity 75% {TT}", 3.17),
    ("mobilevitv2", "int8"): ("MobileViTv2-1.0 Weight-only", 1.92),
    ("centernet", "kmeans-8bit"): ("CenterNet (ResNet34 backbone) 8 bit K-Means", 2.00),
    ("centernet", "kmeans-6bit"): ("CenterNet (ResNet34 backbone) 6 bit K-Means", 2.65),
    ("centernet", "kmeans-4bit"): (f"CenterNet (ResNet34 backbone) 4 bit DKM {TT}", 3.94),
    ("centernet", "kmeans-2bit"): (f"CenterNet (ResNet34 backbone) 2 bit DKM {TT}", 7.71),
}


def run(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "config", workdir / "config", dirs_exist_ok=True)
    # The config's relative paths (the deepforest wheel in .venv/fixtures) are relative to the
    # working directory, as when a user runs from the repository root.
    if not (workdir / ".venv").exists():
        (workdir / ".venv").symlink_to(ROOT / ".venv")
    subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory",
         str(workdir), "--configfile", str(ROOT / "config" / "random-weights.yaml"),
         "--cores", "2", "--quiet", "rules"],
        check=True, env={"PATH": f"{BIN}:/usr/bin:/bin"},
    )  # fmt: skip


def table(workdir: Path) -> list[str]:
    rows = [
        "| model | experiment | ratio (package) | ratio (weight.bin) | seed row | seed ratio "
        "| Δ package vs seed | weights left dense |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for manifest in sorted((workdir / "results" / "compressed").rglob("manifest.json")):
        data = json.loads(manifest.read_text())
        key = (data["model"], data["experiment"])
        seed_row, seed_ratio = SEED.get(key, ("—", None))
        ratio = data["compression_ratio_package"]
        delta = f"{100 * (ratio - seed_ratio) / seed_ratio:+.1f} %" if seed_ratio else "—"
        dense = data["weight_encodings"].get("const", 0)
        total = sum(data["weight_encodings"].values())
        rows.append(
            f"| {data['model']} | {data['experiment']} | {ratio:.2f} | "
            f"{data['compression_ratio_weights']:.2f} | {seed_row} | "
            f"{seed_ratio if seed_ratio else '—'} | {delta} | {dense} of {total} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    t0 = time.perf_counter()
    if args.workdir is None:
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp))
            rows = table(Path(tmp))
    else:
        run(args.workdir)
        rows = table(args.workdir)
    seconds = time.perf_counter() - t0
    text = "\n".join(
        [
            "# Compression ratios: the five seed models (random weights) vs the seed tables",
            "",
            f"Measured by `benchmarks/compression_ratios.py` on {time.strftime('%Y-%m-%d')} "
            f"({seconds:.0f} s for the whole workflow run on 2 cores). Ratio (package) = fp16 "
            "package bytes / compressed package bytes; ratio (weight.bin) = the same for the "
            "weight blob. 'weights left dense' counts conv/linear weights coremltools skipped.",
            "",
            *rows,
            "",
        ]
    )
    write_keeping_notes(OUT, text)


if __name__ == "__main__":
    main()
