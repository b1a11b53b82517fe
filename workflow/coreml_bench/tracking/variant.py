"""What one variant's records say as MLflow metrics (used by the study's track stage)."""

from __future__ import annotations

from typing import Any

from ..compress.record import is_baseline_record


def variant_metrics(
    manifest: dict[str, Any], evaluation: dict[str, Any], profile: dict[str, Any]
) -> dict[str, float | None]:
    baseline = is_baseline_record(manifest)
    metrics: dict[str, float | None] = {
        **{
            key: value
            for key, value in evaluation["metrics"].items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        },
        "compression_ratio_package": 1.0 if baseline else manifest["compression_ratio_package"],
        "compression_ratio_weights": 1.0 if baseline else manifest["compression_ratio_weights"],
        "package_bytes": manifest["package_bytes"],
        "weight_bytes": manifest["weight_bytes"],
        "parameters": profile["static"]["parameters"],
        "macs": profile["static"]["macs"],
        f"{manifest['stage']}_wall_seconds": manifest["timing"]["wall_seconds"],
        f"{manifest['stage']}_peak_rss_mb": manifest["timing"]["peak_rss_mb"],
        "evaluate_wall_seconds": evaluation["timing"]["wall_seconds"],
        "profile_wall_seconds": profile["timing"]["wall_seconds"],
    }
    for key, value in profile["latency"].items():
        if key.endswith("_ms"):
            metrics[key] = value
    if manifest.get("torch_accuracy") is not None:
        metrics["torch_accuracy"] = manifest["torch_accuracy"]
    return metrics


def history_metrics(manifest: dict[str, Any]) -> list[tuple[str, float, int]]:
    """A training job's per-epoch history as (key, value, epoch) MLflow step metrics."""
    return [
        (key, float(value), int(entry["epoch"]))
        for entry in manifest.get("history") or []
        for key, value in entry.items()
        if key != "epoch" and value is not None
    ]
