"""MLflow mirror of results/: one experiment per study, a parent run per model and one child
run per (model, experiment, trial).

The files under results/ stay the source of truth; logging is idempotent (same content →
same run) so reruns never duplicate, and changed content supersedes the old run visibly.
Parallel Snakemake jobs share one sqlite store: writes are serialised by a lock file and
retried with backoff on "database is locked".
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
TAG = "coreml_bench"
MAX_PARAM_LENGTH = 6000  # MLflow's limit for a param value
BATCH = 100


def flatten(data: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, str]:
    """Nested dicts and lists → flat ``a.b.0.c`` keys with string values."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name, sep))
        elif isinstance(value, (list, tuple)) and any(isinstance(v, Mapping) for v in value):
            flat.update(flatten({str(i): v for i, v in enumerate(value)}, name, sep))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


def content_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def with_retries(action: Callable[[], T], max_attempts: int = 8, base_delay: float = 0.2) -> T:
    """Retry ``action`` on sqlite lock contention with exponential backoff and jitter."""
    for attempt in range(1, max_attempts + 1):
        try:
            return action()
        except Exception as error:
            if "database is locked" not in str(error) or attempt == max_attempts:
                raise
            delay = base_delay * 2 ** (attempt - 1) * (1 + random.random())
            log.warning("MLflow store busy (attempt %d), retrying in %.1fs", attempt, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _experiment_id(client: Any, study: str, artifact_root: Path) -> str:
    experiment = client.get_experiment_by_name(study)
    if experiment is not None:
        return str(experiment.experiment_id)
    artifact_root.mkdir(parents=True, exist_ok=True)
    return str(client.create_experiment(study, artifact_location=artifact_root.resolve().as_uri()))


def _parent_run_id(client: Any, experiment_id: str, model_id: str) -> str:
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG}.role` = 'parent' and tags.`{TAG}.model` = '{model_id}'",
        max_results=1,
    )
    if found:
        return str(found[0].info.run_id)
    run = client.create_run(
        experiment_id,
        run_name=model_id,
        tags={f"{TAG}.role": "parent", f"{TAG}.model": model_id},
    )
    client.set_terminated(run.info.run_id, "FINISHED")
    return str(run.info.run_id)


def _log_child(
    client: Any,
    *,
    experiment_id: str,
    parent_id: str,
    run_key: str,
    digest: str,
    run_name: str,
    params: dict[str, str],
    metrics: Mapping[str, float | int | None],
    tags: dict[str, str],
    artifact_files: Sequence[tuple[str, Path]],
    artifact_dirs: Mapping[str, Path],
) -> tuple[str, bool]:
    from mlflow.entities import Metric, Param

    existing = client.search_runs(
        [experiment_id], filter_string=f"tags.`{TAG}.run_key` = '{run_key}'"
    )
    for run in existing:
        same = run.data.tags.get(f"{TAG}.content_hash") == digest
        if same and run.info.status == "FINISHED":
            return str(run.info.run_id), True
    for run in existing:
        client.set_tag(run.info.run_id, f"{TAG}.superseded", "true")
    run = client.create_run(
        experiment_id,
        run_name=run_name,
        tags={**tags, "mlflow.parentRunId": parent_id, f"{TAG}.run_key": run_key,
              f"{TAG}.content_hash": digest},
    )  # fmt: skip
    run_id = str(run.info.run_id)
    try:
        now = int(time.time() * 1000)
        items = list(params.items())
        for start in range(0, len(items), BATCH):
            client.log_batch(run_id, params=[Param(k, v) for k, v in items[start : start + BATCH]])
        values = [
            Metric(k, float(v), now, 0)
            for k, v in metrics.items()
            if v is not None and not math.isnan(float(v))
        ]
        for start in range(0, len(values), BATCH):
            client.log_batch(run_id, metrics=values[start : start + BATCH])
        for folder, path in artifact_files:
            client.log_artifact(run_id, str(path), artifact_path=folder)
        for name, directory in artifact_dirs.items():
            client.log_artifacts(run_id, str(directory), artifact_path=name)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id, False


def log_variant_run(
    *,
    tracking_uri: str,
    study: str,
    artifact_root: Path,
    model_id: str,
    experiment_id: str,
    trial: int,
    params: Mapping[str, Any],
    metrics: Mapping[str, float | int | None],
    tags: Mapping[str, str],
    artifact_files: Sequence[tuple[str, Path]] = (),
    artifact_dirs: Mapping[str, Path] | None = None,
    lock_path: Path | None = None,
    max_attempts: int = 8,
) -> dict[str, str]:
    """Mirror one variant into MLflow (idempotently); returns the run's ids.

    ``artifact_files`` are (artifact folder, local file) pairs; ``artifact_dirs`` maps an
    artifact folder name to a local directory (e.g. an .mlpackage) uploaded whole.
    """
    from filelock import FileLock
    from mlflow.tracking import MlflowClient

    artifact_dirs = dict(artifact_dirs or {})
    run_key = f"{model_id}/{experiment_id}/trial{trial}"
    flat = {
        k: (v if len(v) <= MAX_PARAM_LENGTH else v[: MAX_PARAM_LENGTH - 15] + "...[truncated]")
        for k, v in flatten(params).items()
    }
    all_tags = {
        **{k: str(v) for k, v in tags.items()},
        f"{TAG}.model": model_id,
        f"{TAG}.experiment": experiment_id,
        f"{TAG}.trial": str(trial),
    }
    digest = content_hash(
        {
            "params": flat,
            "metrics": dict(metrics),
            "tags": all_tags,
            "files": {f"{d}/{p.name}": _file_sha256(p) for d, p in artifact_files},
            "dirs": sorted(artifact_dirs),
        }
    )
    client = MlflowClient(tracking_uri)
    if lock_path is not None:
        Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path)) if lock_path is not None else nullcontext()

    def attempt() -> dict[str, str]:
        with lock:
            exp_id = _experiment_id(client, study, Path(artifact_root))
            parent_id = _parent_run_id(client, exp_id, model_id)
            run_id, reused = _log_child(
                client,
                experiment_id=exp_id,
                parent_id=parent_id,
                run_key=run_key,
                digest=digest,
                run_name=f"{experiment_id}/trial{trial}",
                params=flat,
                metrics=metrics,
                tags=all_tags,
                artifact_files=artifact_files,
                artifact_dirs=artifact_dirs,
            )
        return {
            "run_id": run_id,
            "parent_run_id": parent_id,
            "experiment_id": exp_id,
            "tracking_uri": tracking_uri,
            "run_key": run_key,
            "reused": str(reused).lower(),
        }

    return with_retries(attempt, max_attempts)


def mlflow_ui_command(tracking_uri: str) -> str:
    return f"mlflow ui --backend-store-uri {tracking_uri}"
