"""Stage 6: the seed tables' layout (markdown + CSV) and a Pareto plot, from manifests only."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .manifest import read_json

log = logging.getLogger(__name__)

SEED_COLUMNS = [
    "Model Name",
    "Config",
    "Optimization Algorithm",
    "Compression Ratio",
    "Accuracy",
    "Latency (ms)",
]
MARKERS = {
    "none": "*",
    "palettize_kmeans": "o",
    "quantize_linear": "s",
    "prune_magnitude": "^",
    "palettize_dkm": "P",
    "palettize_skm": "X",
    "palettize_torch_post_training": "h",
    "quantize_torch_post_training": "d",
    "prune_magnitude_training": "v",
    "quantize_qat": "p",
}


def _mean_std(values: Sequence[float], digits: int = 2) -> str:
    """'71.66' for one trial, '71.66 ± 0.04' (sample std) for several, as in the seeds."""
    import statistics

    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def collect(
    rows: list[dict[str, Any]],
    manifests: Sequence[Path],
    evaluations: Sequence[Path],
    profiles: Sequence[Path],
) -> list[dict[str, Any]]:
    """One flat record per (model, experiment, trial), joined from the three JSON files."""
    records = []
    for row, manifest_path, eval_path, profile_path in zip(
        rows, manifests, evaluations, profiles, strict=True
    ):
        manifest, evaluation, profile = (
            read_json(manifest_path),
            read_json(eval_path),
            read_json(profile_path),
        )
        baseline = manifest.get("stage") == "convert"
        latency = profile["latency"]
        records.append(
            {
                **row,
                "algorithm_display": "n/a" if baseline else manifest["algorithm_display"],
                "workflow": "n/a" if baseline else manifest["workflow"],
                "ratio_package": 1.0 if baseline else manifest["compression_ratio_package"],
                "ratio_weights": 1.0 if baseline else manifest["compression_ratio_weights"],
                "package_mb": manifest["package_bytes"] / 1e6,
                # The model's headline metric: top-1 % (classification) or mAP % (COCO).
                "accuracy": evaluation["metrics"]["accuracy"],
                "metric": evaluation["metrics"]["metric"],
                "top5": evaluation["metrics"].get("top5"),
                "n_images": evaluation["metrics"]["n_images"],
                "accuracy_backend": evaluation["backend"],
                "latency_ms": latency["latency_median_ms"],
                "latency_p90_ms": latency["latency_p90_ms"],
                "latency_backend": profile["backend"],
                "latency_device": latency.get("device", "unknown"),
                "compute_units": latency.get("compute_units", "unknown"),
                "latency_os": latency.get("os", "unknown"),
                "latency_runs": profile["runs"],
                "latency_warmup": profile["warmup"],
                # macOS sweeps: median latency per extra compute unit, for extra columns.
                **{
                    f"latency_{unit}_ms": figures["latency_median_ms"]
                    for unit, figures in list(latency.get("by_compute_units", {}).items())[1:]
                },
                # The finalized torch model's top-1 (torch-side algorithms only): what training
                # reached, beside the Core ML artifact's own accuracy.
                "torch_top1": manifest.get("torch_top1"),
                "parameters": profile["static"]["parameters"],
                "macs": profile["static"]["macs"],
            }
        )
    return records


def summary_table(records: list[dict[str, Any]]) -> Any:
    """Trials folded into mean ± std; columns in the seed tables' order, then provenance."""
    import pandas as pd

    frame = pd.DataFrame(records)
    out = []
    for (_model, _experiment), group in frame.groupby(["model", "experiment"], sort=False):
        first = group.iloc[0]
        out.append(
            {
                "Model Name": first["model_name"],
                "Config": first["config_label"],
                "Optimization Algorithm": first["algorithm_display"],
                "Compression Ratio": f"{group['ratio_package'].mean():.2f}",
                "Accuracy": _mean_std(group["accuracy"].tolist()),
                "Latency (ms)": _mean_std(group["latency_ms"].tolist(), digits=3),
                "Optimization Workflow": first["workflow"],
                "Ratio (weight.bin)": f"{group['ratio_weights'].mean():.2f}",
                "Metric": first["metric"],
                "Top-5": _mean_std(group["top5"].tolist()) if group["top5"].notna().all() else "",
                "Size (MB)": f"{group['package_mb'].mean():.2f}",
                "Torch Top-1": (
                    _mean_std(group["torch_top1"].tolist())
                    if group["torch_top1"].notna().all()
                    else ""
                ),
                "Trials": len(group),
                "Images": int(first["n_images"]),
                "Accuracy Backend": first["accuracy_backend"],
                "Latency Backend": f"{first['latency_backend']} ({first['latency_device']})",
                "Latency Setup": (
                    f"{first['compute_units']}, {first['latency_os']}, median of "
                    f"N={first['latency_runs']} after {first['latency_warmup']} warm-up"
                ),
                **{
                    f"Latency {column[len('latency_') : -len('_ms')]} (ms)": _mean_std(
                        group[column].tolist(), digits=3
                    )
                    for column in group.columns
                    if column.startswith("latency_")
                    and column.endswith("_ms")
                    and column not in ("latency_ms", "latency_p90_ms")
                    and group[column].notna().all()
                },
            }
        )
    return pd.DataFrame(out)


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def pareto_plot(records: list[dict[str, Any]], path: Path) -> None:
    """Accuracy vs compression ratio: one marker per algorithm, one colour per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame(records)
    grouped = (
        frame.groupby(["model", "experiment"], sort=False)
        .agg(
            model_name=("model_name", "first"),
            label=("config_label", "first"),
            algorithm=("algorithm", "first"),
            algorithm_display=("algorithm_display", "first"),
            workflow=("workflow", "first"),
            ratio=("ratio_package", "mean"),
            accuracy=("accuracy", "mean"),
            accuracy_std=("accuracy", "std"),
            backend=("accuracy_backend", "first"),
        )
        .reset_index()
    )
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (_model, group) in enumerate(grouped.groupby("model", sort=False)):
        colour = colours[index % len(colours)]
        ordered = group.sort_values("ratio")
        frontier, best = [], -1.0
        for _, point in ordered.iloc[::-1].iterrows():  # highest ratio first
            if point["accuracy"] > best:
                frontier.append(point)
                best = point["accuracy"]
        if len(frontier) > 1:
            front = pd.DataFrame(frontier).sort_values("ratio")
            ax.plot(front["ratio"], front["accuracy"], color=colour, alpha=0.4, lw=1)
        for _, point in group.iterrows():
            ax.errorbar(
                point["ratio"],
                point["accuracy"],
                yerr=0 if pd.isna(point["accuracy_std"]) else point["accuracy_std"],
                marker=MARKERS.get(point["algorithm"], "D"),
                color=colour,
                ms=8,
                ls="none",
            )
            ax.annotate(
                point["label"],
                (point["ratio"], point["accuracy"]),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
        ax.plot([], [], color=colour, lw=3, label=group["model_name"].iloc[0])
    for algorithm, marker in MARKERS.items():
        shown = grouped[grouped["algorithm"] == algorithm]
        if not shown.empty:
            first = shown.iloc[0]
            # Post-training and training-time variants of one method share a display name.
            label = (
                "Float16"
                if algorithm == "none"
                else f"{first['algorithm_display']} ({first['workflow'].lower()})"
            )
            ax.plot([], [], marker=marker, color="grey", ls="none", label=label)
    backends = ", ".join(sorted(grouped["backend"].unique()))
    n_images = int(frame["n_images"].iloc[0])
    ax.set_xlabel("compression ratio vs fp16 package (higher is smaller)")
    metrics = " / ".join(frame["metric"].unique())
    ax.set_ylabel(f"{metrics} on {n_images} images")
    ax.set_title(f"Accuracy vs compression (accuracy backend: {backends})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def aggregate(
    *,
    manifests: Sequence[Path],
    evaluations: Sequence[Path],
    profiles: Sequence[Path],
    rows: list[dict[str, Any]],
    table_csv: Path,
    table_md: Path,
    plot: Path,
) -> Any:
    records = collect(rows, manifests, evaluations, profiles)
    table = summary_table(records)
    _write_text_atomic(table_csv, table.to_csv(index=False))
    backends = sorted({r["latency_backend"] + " (" + r["latency_device"] + ")" for r in records})
    mixed = (
        f" The Latency column MIXES {len(backends)} devices; compare rows only within one "
        "'Latency Backend'."
        if len(backends) > 1
        else ""
    )
    note = (
        "\n\nAccuracy: the 'Metric' (top-1 % or COCO mAP %) of the compressed Core ML "
        "artifact, measured by the backend "
        "named in 'Accuracy Backend'. Latency: median of batch-1 predictions measured by "
        f"{'; '.join(backends)}: host latency is not device latency.{mixed}\n"
    )
    _write_text_atomic(table_md, table.to_markdown(index=False) + note)
    pareto_plot(records, plot)
    log.info("wrote %s, %s and %s (%d rows)", table_csv, table_md, plot, len(table))
    return table
