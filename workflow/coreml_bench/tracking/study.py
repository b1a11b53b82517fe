"""Stage track: the study's records on disk become its MLflow mirror, from one local job.

Compute jobs (on a cluster, many nodes) write records only; this stage, run once on the
machine that drives the workflow, mirrors them: one run per variant under a parent run per
model, the summary table and the reference gate as study-level tables, and the runs of
variants the config no longer has closed and tagged removed. Every call is idempotent: an
unchanged variant keeps its run (nothing is logged again), a changed one gets a new run and
the old one is tagged superseded.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import json_digest, read_json, write_json_atomic
from ..mlpackage.files import verify_package
from .mlflow_store import (
    DatasetSpec,
    artifact_location,
    close_removed_runs,
    log_study_table,
    log_variant_run,
    mlflow_ui_command,
)
from .settings import TrackingSettings
from .variant import history_metrics, variant_metrics

log = logging.getLogger(__name__)

# MLflow's source tags (mlflow.utils.mlflow_tags): the runs list's Source column.
SOURCE_NAME_TAG = "mlflow.source.name"
SOURCE_TYPE_TAG = "mlflow.source.type"
GIT_COMMIT_TAG = "mlflow.source.git.commit"


@dataclass(frozen=True)
class VariantFiles:
    """One variant's records on disk, and the settings that define it (MLflow params)."""

    model: str
    experiment: str
    trial: int
    package: Path
    manifest: Path
    evaluation: Path
    profile: Path
    run_params: dict[str, Any]
    logs: list[Path] = field(default_factory=list)

    @property
    def run_key(self) -> str:
        return f"{self.model}/{self.experiment}/trial{self.trial}"


def evaluation_dataset(evaluation: dict[str, Any]) -> DatasetSpec:
    """The evaluation data of one record as an MLflow dataset input."""
    dataset = dict(evaluation["dataset"])
    n_images = dataset.pop("n_images", None)
    name = str(dataset.get("kind", "dataset"))
    if dataset.get("split"):
        name = f"{name}:{dataset['split']}"
    return DatasetSpec(
        name=name,
        digest=json_digest(dataset),
        source=dataset,
        context="evaluation",
        profile={"num_images": n_images} if n_images is not None else {},
    )


def _source_tags(records: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Source tags from the records themselves (not from this process), so a rerun of the
    mirror under a newer commit does not re-log results that newer commit did not make."""
    commits = sorted(
        {
            r["provenance"]["git_commit"]
            for r in records
            if isinstance(r.get("provenance"), dict) and r["provenance"].get("git_commit")
        }
    )
    tags = {SOURCE_NAME_TAG: "Snakefile (coreml-bench workflow)", SOURCE_TYPE_TAG: "LOCAL"}
    if len(commits) == 1 and commits[0] != "unknown":
        tags[GIT_COMMIT_TAG] = commits[0]
    elif commits:
        tags["coreml_bench.git_commits"] = ",".join(commits)
    return tags


def _fingerprints(records: dict[str, dict[str, Any]]) -> dict[str, str]:
    tags = {}
    for role, record in records.items():
        provenance = record.get("provenance")
        if isinstance(provenance, dict):
            tags[f"code_fingerprint.{role}"] = provenance["code_fingerprint"]
            tags[f"environment_fingerprint.{role}"] = provenance["environment_fingerprint"]
    return tags


def track_one(variant: VariantFiles, tracking: TrackingSettings, study: str) -> dict[str, str]:
    """Mirror one variant's records into its MLflow run (reused when nothing changed)."""
    verify_package(variant.package, variant.manifest)
    manifest, evaluation, profile = (
        read_json(variant.manifest),
        read_json(variant.evaluation),
        read_json(variant.profile),
    )
    records = {"compress": manifest, "evaluate": evaluation, "profile": profile}
    tags = {
        **_source_tags(list(records.values())),
        **_fingerprints(records),
        "config_hash": json_digest(variant.run_params),
        "evaluation_backend": evaluation["backend"],
        "profiling_backend": profile["backend"],
        "latency_device": profile["latency"].get("device", "unknown"),
        **{f"version.{k}": v for k, v in (manifest.get("versions") or {}).items()},
    }
    if manifest.get("package_content_sha256"):
        tags["package_content_sha256"] = manifest["package_content_sha256"]
    return log_variant_run(
        tracking_uri=tracking.uri,
        study=study,
        artifact_root=artifact_location(tracking.uri),
        model_id=variant.model,
        experiment_id=variant.experiment,
        trial=variant.trial,
        params=variant.run_params,
        metrics=variant_metrics(manifest, evaluation, profile),
        tags=tags,
        artifact_files=[
            ("manifest", variant.manifest),
            ("evaluation", variant.evaluation),
            ("profile", variant.profile),
            # results/logs/<rule>/...: keep the rule name so same-named logs do not collide.
            *[(f"logs/{Path(p).parts[-4]}", Path(p)) for p in variant.logs if Path(p).is_file()],
        ],
        artifact_dirs={variant.package.name: variant.package} if tracking.log_packages else {},
        step_metrics=history_metrics(manifest),
        datasets=[evaluation_dataset(evaluation)],
    )


def _csv_records(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def track_study(
    *,
    variants: Sequence[VariantFiles],
    tracking: TrackingSettings,
    study: str,
    summary_csv: Path,
    summary_files: Sequence[Path],
    gate_csv: Path | None,
    gate_files: Sequence[Path],
    output: Path,
    sensitivity_csv: Path | None = None,
    sensitivity_files: Sequence[Path] = (),
    searches: Sequence[Path] = (),
    search_files: Sequence[Path] = (),
) -> dict[str, Any]:
    """Mirror every variant, the summary table, the gate, the per-layer sensitivity table
    and the mixed-precision searches; close removed variants' runs."""
    runs: dict[str, dict[str, str]] = {}
    for index, variant in enumerate(variants, 1):
        run = track_one(variant, tracking, study)
        runs[variant.run_key] = run
        log.info(
            "[%d/%d] %s: run %s (%s)",
            index,
            len(variants),
            variant.run_key,
            run["run_id"],
            "unchanged" if run["reused"] == "true" else "logged",
        )
    removed = close_removed_runs(
        tracking_uri=tracking.uri,
        study=study,
        run_keys=list(runs),
        models=sorted({v.model for v in variants}),
    )
    if removed:
        log.info("closed %d run(s) of variants no longer in the config", len(removed))
    location = artifact_location(tracking.uri)
    summary = _csv_records(summary_csv)
    tables = {
        "summary": log_study_table(
            tracking_uri=tracking.uri,
            study=study,
            artifact_root=location,
            role="summary",
            records=summary,
            metrics={"variants": len(summary)},
            files=list(summary_files),
        )
    }
    if gate_csv is not None:
        gate = _csv_records(gate_csv)
        statuses = [row.get("status", "") for row in gate]
        tables["reference_gate"] = log_study_table(
            tracking_uri=tracking.uri,
            study=study,
            artifact_root=location,
            role="reference_gate",
            records=gate,
            metrics={
                "gate_rows": len(gate),
                **{f"gate_{s.replace(' ', '_')}": statuses.count(s) for s in set(statuses)},
            },
            files=list(gate_files),
        )
    if sensitivity_csv is not None:
        layers = _csv_records(sensitivity_csv)
        tables["sensitivity"] = log_study_table(
            tracking_uri=tracking.uri,
            study=study,
            artifact_root=location,
            role="sensitivity",
            records=layers,
            metrics={
                "tensors_measured": len(layers),
                "settings_measured": len({(r["model"], r["experiment"]) for r in layers}),
            },
            files=list(sensitivity_files),
        )
    if searches:
        found = [read_json(path) for path in searches]
        tables["mixed_precision"] = log_study_table(
            tracking_uri=tracking.uri,
            study=study,
            artifact_root=location,
            role="mixed_precision",
            records=[
                {
                    "model": r["model"],
                    "experiment": r["experiment"],
                    "budget_bytes": r["budget_bytes"],
                    "predicted_package_bytes": r["predicted_package_bytes"],
                    "predicted_cost": r["predicted_cost"],
                    "settings_chosen": json.dumps(r["settings_chosen"], sort_keys=True),
                }
                for r in found
            ],
            metrics={"searches": len(found)},
            files=[*searches, *search_files],
        )
    record = {
        "stage": "track",
        "study": study,
        "tracking_uri": tracking.uri,
        "browse": mlflow_ui_command(tracking.uri),
        "runs": runs,
        "tables": tables,
        "removed_runs": removed,
        "logged": sorted(k for k, r in runs.items() if r["reused"] == "false"),
    }
    write_json_atomic(output, record)
    return record
