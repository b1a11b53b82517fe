"""Stage track: one variant's result files become an MLflow run (the mirror of results/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..compress.record import is_baseline_record
from ..io import json_digest, read_json, write_json_atomic
from ..provenance import git_commit, package_versions
from .mlflow_store import ARTIFACT_ROOT, LOCK_PATH, log_variant_run
from .settings import TrackingSettings


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


def track_variant(
    *,
    package: Path,
    manifest: Path,
    evaluation: Path,
    profile: Path,
    logs: list[Path],
    run_params: dict[str, Any],
    tracking: TrackingSettings,
    study: str,
    output: Path,
    context: dict[str, Any],
) -> dict[str, Any]:
    manifest_data, evaluation_data, profile_data = (
        read_json(manifest),
        read_json(evaluation),
        read_json(profile),
    )
    config_hash = json_digest(run_params)
    tags = {
        "git_commit": git_commit(),
        "config_hash": config_hash,
        "evaluation_backend": evaluation_data["backend"],
        "profiling_backend": profile_data["backend"],
        "latency_device": profile_data["latency"].get("device", "unknown"),
        **{f"version.{k}": v for k, v in package_versions().items()},
    }
    if manifest_data.get("training_run_id"):
        tags["training_run_id"] = manifest_data["training_run_id"]
    run = log_variant_run(
        tracking_uri=tracking.uri,
        study=study,
        artifact_root=ARTIFACT_ROOT,
        model_id=context["model"],
        experiment_id=context["experiment"],
        trial=context["trial"],
        params=run_params,
        metrics=variant_metrics(manifest_data, evaluation_data, profile_data),
        tags=tags,
        artifact_files=[
            ("manifest", manifest),
            ("evaluation", evaluation),
            ("profile", profile),
            # results/logs/<rule>/...: keep the rule name so same-named logs do not collide.
            *[(f"logs/{Path(log).parts[-4]}", Path(log)) for log in logs],
        ],
        artifact_dirs={package.name: package} if tracking.log_packages else {},
        step_metrics=history_metrics(manifest_data),
        lock_path=LOCK_PATH,
    )
    record = {"stage": "track", **context, **run, "tags": tags}
    write_json_atomic(output, record)
    return record
