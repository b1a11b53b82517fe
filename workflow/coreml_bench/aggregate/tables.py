"""The seed tables' layout: one record per variant joined from its JSON files, trials folded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..compress.record import is_baseline_record
from ..io import read_json
from ..schema_base import StrictModel

SEED_COLUMNS = [
    "Model Name",
    "Config",
    "Optimization Algorithm",
    "Compression Ratio",
    "Accuracy",
    "Latency (ms)",
]


class TableRow(StrictModel):
    """One variant's place and labels in the tables (config order)."""

    model: str
    model_name: str
    experiment: str
    trial: int
    config_label: str
    algorithm: str


def _mean_std(values: Sequence[float], digits: int = 2) -> str:
    """'71.66' for one trial, '71.66 ± 0.04' (sample std) for several, as in the seeds."""
    import statistics

    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def collect(
    rows: Sequence[TableRow],
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
        baseline = is_baseline_record(manifest)
        latency = profile["latency"]
        records.append(
            {
                **row.model_dump(),
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
                "dataset_kind": evaluation.get("dataset", {}).get("kind", "unknown"),
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
                "torch_accuracy": manifest.get("torch_accuracy"),
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
                "Torch Accuracy": (
                    _mean_std(group["torch_accuracy"].tolist())
                    if group["torch_accuracy"].notna().all()
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
