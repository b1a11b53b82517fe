"""Beyond the paper on the quickstart model: writes benchmarks/sensitivity_quickstart.md from
a finished run of config/sensitivity.yaml.

    .venv/bin/snakemake --cores all --configfile config/sensitivity.yaml --directory WORK
    .venv/bin/python benchmarks/sensitivity_quickstart.py WORK

Reads only the run's records (tables, sensitivity records, search records, manifests).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
MODEL = "efficientnet_lite0"


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="the run's working directory")
    parser.add_argument("--out", type=Path, default=HERE / "sensitivity_quickstart.md")
    args = parser.parse_args()
    results = args.work / "results"
    summary = pd.read_csv(results / "tables/summary.csv", keep_default_na=False)
    columns = ["Config", "Optimization Algorithm", "Compression Ratio", "Size (MB)", "Accuracy"]
    rows = summary[[*columns, "Accuracy Backend"]]
    fp16 = float(summary.loc[summary["Config"] == "Float16", "Accuracy"].iloc[0])
    lines = [
        "# Beyond the paper: EfficientNet-Lite0 (quickstart weights)\n",
        f"Run of `config/sensitivity.yaml`; written by `{Path(sys.argv[0]).name}` from the "
        "run's records. Accuracy: top-1 % on the 20 real ImageNet images of the foolbox "
        "wheel (5 points per image), measured by the backend in the last column.\n",
        "## Every row\n",
        rows.to_markdown(index=False) + "\n",
        "## The searches against the uniform row of the same size\n",
        "| search | budget (bytes) | package (bytes) | off budget | top-1 | uniform row | "
        "uniform top-1 | share of fp16 top-1 recovered | chosen settings |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for search_path in sorted((results / "mixed_precision" / MODEL).glob("*/search.json")):
        search = _json(search_path)
        experiment = search["experiment"]
        manifest = _json(results / f"compressed/{MODEL}/{experiment}/trial1/manifest.json")
        evaluation = _json(results / f"evaluation/{MODEL}/{experiment}/trial1.json")
        size_of = search["compression"]["size_of"]
        uniform = _json(results / f"evaluation/{MODEL}/{size_of}/trial1.json")
        top1 = evaluation["metrics"]["accuracy"]
        off = (manifest["package_bytes"] - search["budget_bytes"]) / search["budget_bytes"]
        lines.append(
            f"| {experiment} ({search['compression']['search']}) | {search['budget_bytes']} | "
            f"{manifest['package_bytes']} | {off:+.2%} | {top1:.1f} | {size_of} | "
            f"{uniform['metrics']['accuracy']:.1f} | {top1 / fp16:.0%} | "
            f"{', '.join(f'{k}: {v}' for k, v in sorted(search['settings_chosen'].items()))} |"
        )
    lines += ["", "## Which tensors break each setting (top 5 by KL)\n"]
    for record_path in sorted((results / "sensitivity" / MODEL).glob("*.json")):
        record = _json(record_path)
        layers = pd.DataFrame(record["layers"])
        layers.insert(0, "#", range(len(layers)))
        whole = record["whole_model"]
        lines.append(
            f"**{record['setting']['label']}** ({record['experiment']}): all {len(layers)} "
            f"tensors at once: KL {whole['kl']:.3g}, calibration top-1 {whole['top1']:.1f} % "
            f"(fp16 {record['reference_top1']:.1f} %); sum of per-tensor KLs "
            f"{layers['kl'].sum():.3g}; job {record['timing']['wall_seconds']:.0f} s.\n"
        )
        top = layers.sort_values("kl", ascending=False).head(5)
        table = top[["#", "op_name", "shape", "parameters", "kl", "top1_drop", "agreement"]]
        lines.append(table.to_markdown(index=False, floatfmt=".4g") + "\n")
    lines += ["## Job time by rule (Snakemake benchmarks, seconds, 2 cores)\n"]
    timing = []
    for folder in sorted(p for p in (results / "benchmarks").iterdir() if p.is_dir()):
        seconds = [float(pd.read_csv(t, sep="\t")["s"].iloc[0]) for t in folder.rglob("*.tsv")]
        timing.append({"rule": folder.name, "jobs": len(seconds), "seconds": sum(seconds)})
    lines.append(pd.DataFrame(timing).to_markdown(index=False, floatfmt=".0f") + "\n")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
