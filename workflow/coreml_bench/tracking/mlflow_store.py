"""MLflow mirror of results/: one experiment per study, a parent run per model and one child
run per (model, experiment, trial).

The files under results/ stay the source of truth; MLflow only mirrors them. Logging is
idempotent (same content → same run) so reruns never duplicate, and changed content creates a
new run and tags the old one ``coreml_bench.superseded=true`` so history stays visible.
Only the workflow's local ``track`` rule writes (compute jobs write records, never to MLflow),
but several studies may share one store: writes to a sqlite store are serialised by a lock
file beside the database (one absolute path whatever the working directory), retried with
backoff on "database is locked", and a new database is created and migrated once, under that
lock, in a temporary file renamed into place.

Only ``MlflowClient`` is used (never the fluent ``mlflow.start_run`` API) so nothing depends on
process-global state such as the active run or ``MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from ..io import SNAKEMAKE_MARKERS, directory_file_digests, json_digest, sha256_file

if TYPE_CHECKING:  # mlflow takes seconds to import; only pay for it when logging.
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

T = TypeVar("T")

TAG = "coreml_bench"
ROLE_TAG = f"{TAG}.role"
MODEL_TAG = f"{TAG}.model"
EXPERIMENT_TAG = f"{TAG}.experiment"
TRIAL_TAG = f"{TAG}.trial"
RUN_KEY_TAG = f"{TAG}.run_key"
HASH_TAG = f"{TAG}.content_hash"
SUPERSEDED_TAG = f"{TAG}.superseded"
TRUNCATED_TAG = f"{TAG}.truncated_params"
PARENT_TAG = "mlflow.parentRunId"

REMOVED_TAG = f"{TAG}.removed"
# MLflow's own tags: what its UI reads for the experiment type and the runs' Source column.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # not GenAI: the UI opens on runs, not traces
DATASET_CONTEXT_TAG = "mlflow.data.context"

# MLflow's own limits (mlflow.utils.validation); exceeding them makes the whole batch fail.
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
LOCKED = "database is locked"


def flatten(d: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, str]:
    """Nested dicts and lists → flat ``a.b.0.c`` keys with string values (for MLflow params).

    Empty containers are kept as ``"{}"`` / ``"[]"`` so that a key never silently disappears.
    """
    flat: dict[str, str] = {}

    def visit(value: Any, key: str) -> None:
        if isinstance(value, Mapping):
            if not value and key:
                flat[key] = "{}"
            for child_key, child in value.items():
                visit(child, f"{key}{sep}{child_key}" if key else str(child_key))
        elif isinstance(value, list | tuple):
            if not value and key:
                flat[key] = "[]"
            for index, child in enumerate(value):
                visit(child, f"{key}{sep}{index}" if key else str(index))
        else:
            flat[key] = str(value)

    visit(d, prefix)
    return flat


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset a run used, as MLflow's dataset input (``context``: evaluation, training)."""

    name: str
    digest: str
    source: Mapping[str, Any]
    context: str
    profile: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "source": dict(self.source),
            "context": self.context,
            "profile": dict(self.profile),
        }

    def dataset_input(self) -> Any:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        return DatasetInput(
            dataset=Dataset(
                name=self.name,
                digest=self.digest[:36],  # MLflow's column holds 36 characters
                source_type="local",
                source=json.dumps(dict(self.source), sort_keys=True, default=str),
                profile=json.dumps(dict(self.profile), sort_keys=True, default=str),
            ),
            tags=[InputTag(key=DATASET_CONTEXT_TAG, value=self.context)],
        )


def mlflow_ui_command(tracking_uri: str) -> str:
    """The command a user runs to browse the mirror."""
    return f"mlflow ui --backend-store-uri {tracking_uri}"


def _is_locked_error(error: BaseException) -> bool:
    # SQLAlchemy wraps sqlite3.OperationalError and MLflow wraps that again: walk the chain.
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if LOCKED in str(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def with_retries(
    action: Callable[[], T], max_attempts: int = 8, base_delay: float = 0.1, max_delay: float = 10.0
) -> T:
    """Run ``action``; on sqlite lock contention retry with exponential backoff and jitter."""
    for attempt in range(1, max_attempts + 1):
        try:
            return action()
        except Exception as error:
            if attempt >= max_attempts or not _is_locked_error(error):
                raise
            # Jitter keeps processes that collided once from colliding again in lockstep.
            delay = min(max_delay, base_delay * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
            log.warning(
                "MLflow store busy (attempt %d/%d), retry in %.2fs", attempt, max_attempts, delay
            )
            time.sleep(delay)
    raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")


def _quote(value: str) -> str:
    """Quote a value for an MLflow filter string (which has no escape syntax)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"cannot use an id containing both quote characters: {value!r}")


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (absolute), None for any other store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).resolve()


def store_lock_path(tracking_uri: str) -> Path | None:
    """The lock file every writer of this store takes: beside a sqlite database.

    Derived from the database's absolute path, so two studies in different working
    directories that share one database also share its lock. Servers serialise their own
    writes (None).
    """
    database = sqlite_path(tracking_uri)
    return None if database is None else database.with_name(database.name + ".lock")


def artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment keeps its artifacts; None: wherever the store says.

    A tracking server has its own artifact store (``--artifacts-destination`` or
    ``--default-artifact-root``): its experiments get no location from us. A sqlite store
    keeps them beside the database (``artifacts/``), so the store and its files move together
    and never land in the working directory's ./mlruns.
    """
    database = sqlite_path(tracking_uri)
    return None if database is None else (database.parent / "artifacts").as_uri()


def _create_sqlite_store(database: Path) -> None:
    """Create and migrate a new sqlite store in a temporary file, then rename it into place.

    MLflow migrates a new database's schema on first use; two processes doing that at once
    broke the store for good. Called under the store's lock; a killed creation leaves only
    the temporary file.
    """
    from mlflow.tracking import MlflowClient

    database.parent.mkdir(parents=True, exist_ok=True)
    staging = database.with_name(f".{database.name}.creating-{os.getpid()}")
    staging.unlink(missing_ok=True)
    try:
        MlflowClient(f"sqlite:///{staging}").search_experiments(max_results=1)
        _dispose_engines(staging)
        os.replace(staging, database)
    finally:
        staging.unlink(missing_ok=True)


def _dispose_engines(database: Path) -> None:
    # MLflow caches one SQLAlchemy engine per URI; close the staging file's before the rename.
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        for uri in [u for u in SqlAlchemyStore._engine_map if str(database) in u]:
            SqlAlchemyStore._engine_map.pop(uri).dispose()
    except Exception:  # only an optimisation; the rename works with an open sqlite handle
        log.debug("could not dispose the staging engine", exc_info=True)


def _search_all(client: MlflowClient, experiment_id: str, filter_string: str) -> Iterator[Run]:
    # search_runs pages (default 1000 per page); follow the tokens so no run is missed.
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            order_by=["attributes.start_time DESC"],
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def _get_or_create_experiment(
    client: MlflowClient, study: str, artifact_root: Path | str | None
) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(study)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            # A soft-deleted experiment still owns its name; logging into it would fail.
            log.warning("restoring deleted MLflow experiment %r", study)
            client.restore_experiment(experiment.experiment_id)
        if experiment.tags.get(EXPERIMENT_KIND_TAG) is None:
            client.set_experiment_tag(
                experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
            )
        return str(experiment.experiment_id)
    location = None
    if isinstance(artifact_root, Path):
        artifact_root.mkdir(parents=True, exist_ok=True)
        location = artifact_root.resolve().as_uri()
    elif artifact_root is not None:
        location = artifact_root
    try:
        return str(
            client.create_experiment(
                study,
                artifact_location=location,
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
        )
    except MlflowException:
        # Another writer (without a lock) may have created it in the meantime.
        experiment = client.get_experiment_by_name(study)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def _get_or_create_parent(client: MlflowClient, experiment_id: str, model_id: str) -> str:
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{ROLE_TAG}` = 'parent' and tags.`{MODEL_TAG}` = {_quote(model_id)}",
        order_by=["attributes.start_time ASC"],  # oldest wins should duplicates ever exist
        max_results=1,
    )
    if found:
        return str(found[0].info.run_id)
    run = client.create_run(
        experiment_id, run_name=model_id, tags={ROLE_TAG: "parent", MODEL_TAG: model_id}
    )
    # The parent only groups children; it never has work of its own in flight.
    client.set_terminated(run.info.run_id, "FINISHED")
    return str(run.info.run_id)


def _truncate_params(params: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    truncated: list[str] = []
    out: dict[str, str] = {}
    for key, value in params.items():
        if len(value) > MAX_PARAM_LENGTH:
            marker = f"...[truncated from {len(value)} chars]"
            value = value[: MAX_PARAM_LENGTH - len(marker)] + marker
            truncated.append(key)
        out[key] = value
    return out, truncated


def _log_child_contents(
    client: MlflowClient,
    run_id: str,
    params: Mapping[str, str],
    metrics: Mapping[str, float | int | None],
    artifact_files: Sequence[tuple[str | None, Path]],
    artifact_dirs: Mapping[str, Path],
    step_metrics: Sequence[tuple[str, float, int]] = (),
) -> None:
    from mlflow.entities import Metric, Param

    items = list(params.items())
    for start in range(0, len(items), PARAMS_PER_BATCH):
        chunk = items[start : start + PARAMS_PER_BATCH]
        client.log_batch(run_id, params=[Param(k, v) for k, v in chunk])
    now = int(time.time() * 1000)
    values = [
        Metric(key, float(value), now, 0)
        for key, value in metrics.items()
        if value is not None and not math.isnan(float(value))
    ]
    values += [
        Metric(key, float(value), now, int(step))
        for key, value, step in step_metrics
        if not math.isnan(float(value))
    ]
    for start in range(0, len(values), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=values[start : start + METRICS_PER_BATCH])
    for folder, path in artifact_files:
        client.log_artifact(run_id, str(path), artifact_path=folder)
    for name, directory in artifact_dirs.items():
        # Snakemake's marker files in a directory output are not the artifact: upload a view
        # of the directory without them (hard links beside it: no bytes are copied).
        with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".upload-") as tmp:
            view = Path(tmp) / directory.name
            shutil.copytree(
                directory,
                view,
                copy_function=os.link,
                ignore=shutil.ignore_patterns(*SNAKEMAKE_MARKERS),
            )
            client.log_artifacts(run_id, str(view), artifact_path=name)


def _normalise_files(
    artifact_files: Sequence[Path | str | tuple[str | None, Path | str]],
) -> list[tuple[str | None, Path]]:
    # A bare path lands at the artifact root; a (folder, path) pair lands under that folder.
    out: list[tuple[str | None, Path]] = []
    for item in artifact_files:
        if isinstance(item, tuple):
            folder, path = item
            out.append((folder or None, Path(path)))
        else:
            out.append((None, Path(item)))
    return out


def _with_locked_client(
    tracking_uri: str,
    lock_path: Path | None,
    action: Callable[[MlflowClient], T],
    max_attempts: int = 8,
) -> T:
    """``action(client)`` under the store's lock file, retried on sqlite lock contention.

    The lock is ``lock_path`` or, by default, the one beside a sqlite database
    (:func:`store_lock_path`). A missing sqlite database is created once, under the lock.
    A fresh client per attempt, so a failed attempt leaves no half-open connection behind.
    """
    lock_path = lock_path or store_lock_path(tracking_uri)
    database = sqlite_path(tracking_uri)
    lock: AbstractContextManager[Any] = nullcontext()
    if lock_path is not None:
        from filelock import FileLock

        Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(os.fspath(lock_path))

    def attempt() -> T:
        from mlflow.tracking import MlflowClient

        with lock:
            if database is not None and not database.exists():
                _create_sqlite_store(database)
            return action(MlflowClient(tracking_uri))

    return with_retries(attempt, max_attempts)


def log_variant_run(
    *,
    tracking_uri: str,
    study: str,
    artifact_root: Path | str | None,
    model_id: str,
    experiment_id: str,
    trial: int,
    params: Mapping[str, Any],
    metrics: Mapping[str, float | int | None],
    tags: Mapping[str, str],
    artifact_files: Sequence[Path | str | tuple[str | None, Path | str]] = (),
    artifact_dirs: Mapping[str, Path] = MappingProxyType({}),
    step_metrics: Sequence[tuple[str, float, int]] = (),
    datasets: Sequence[DatasetSpec] = (),
    lock_path: Path | None = None,
    max_attempts: int = 8,
) -> dict[str, str]:
    """Mirror one variant into MLflow (idempotently) and return the ids of its run.

    ``step_metrics`` are (key, value, step) triples, e.g. a training job's per-epoch history;
    ``datasets`` become the run's dataset inputs (the UI's Dataset column).

    ``artifact_files`` are files logged at the artifact root, or ``(folder, file)`` pairs
    logged under ``folder``; ``artifact_dirs`` maps an artifact folder name to a local
    directory (e.g. an .mlpackage) uploaded whole. ``lock_path`` serialises concurrent writers
    (several Snakemake jobs on one sqlite file).
    """
    files = _normalise_files(artifact_files)
    dirs = {name: Path(directory) for name, directory in artifact_dirs.items()}
    for directory in dirs.values():
        if not directory.is_dir():  # fail before any run exists rather than mid-upload
            raise NotADirectoryError(f"artifact directory not found: {directory}")
    run_key = f"{model_id}/{experiment_id}/trial{trial}"
    flat, truncated = _truncate_params(flatten(params))
    if truncated:
        log.warning("MLflow params truncated to %d chars: %s", MAX_PARAM_LENGTH, truncated)
    # Hashing happens outside the lock: it can take a while for big packages and needs no DB.
    digest = json_digest(
        {
            "params": dict(params),
            "metrics": dict(metrics),
            "step_metrics": [list(item) for item in step_metrics],
            "tags": dict(tags),
            "files": sorted([folder or "", path.name, sha256_file(path)] for folder, path in files),
            "dirs": {name: directory_file_digests(directory) for name, directory in dirs.items()},
            "datasets": [dataset.as_json() for dataset in datasets],
        }
    )
    child_tags = {
        **{key: str(value)[:MAX_TAG_LENGTH] for key, value in tags.items()},
        # Ours last: a caller's tag must not overwrite the keys the mirror relies on.
        MODEL_TAG: model_id,
        EXPERIMENT_TAG: experiment_id,
        TRIAL_TAG: str(trial),
        RUN_KEY_TAG: run_key,
        HASH_TAG: digest,
    }
    if truncated:
        child_tags[TRUNCATED_TAG] = ",".join(truncated)[:MAX_TAG_LENGTH]

    def log_run(client: MlflowClient) -> dict[str, str]:
        mlflow_experiment = _get_or_create_experiment(client, study, artifact_root)
        parent_id = _get_or_create_parent(client, mlflow_experiment, model_id)
        # Earlier runs of this key (versions of this variant, or leftovers of killed jobs).
        siblings = list(
            _search_all(client, mlflow_experiment, f"tags.`{RUN_KEY_TAG}` = {_quote(run_key)}")
        )
        live = next(
            (
                run
                for run in siblings
                if run.data.tags.get(HASH_TAG) == digest
                and run.info.status == "FINISHED"
                and run.data.tags.get(SUPERSEDED_TAG) != "true"
            ),
            None,
        )
        reused = live is not None
        if live is not None:
            run_id = str(live.info.run_id)
        else:
            run = client.create_run(
                mlflow_experiment,
                run_name=f"{experiment_id}/trial{trial}",
                tags={**child_tags, PARENT_TAG: parent_id},
            )
            run_id = str(run.info.run_id)
            try:
                if datasets:
                    client.log_inputs(run_id, datasets=[d.dataset_input() for d in datasets])
                _log_child_contents(client, run_id, flat, metrics, files, dirs, step_metrics)
            except BaseException:
                try:
                    client.set_terminated(run_id, "FAILED")
                except Exception:  # the original error matters more than this one
                    log.exception("could not mark MLflow run %s FAILED", run_id)
                raise
            client.set_terminated(run_id, "FINISHED")
        # Supersede only once the new run is complete, so a failure never leaves a key
        # without a live run; doing it on reuse too heals an interrupted earlier call.
        for run in siblings:
            if run.info.run_id == run_id:
                continue
            if run.data.tags.get(SUPERSEDED_TAG) != "true":
                client.set_tag(run.info.run_id, SUPERSEDED_TAG, "true")
            # A run still RUNNING was left by a killed tracking job: nothing will finish it.
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, "KILLED")
        return {
            "run_id": run_id,
            "parent_run_id": parent_id,
            "experiment_id": mlflow_experiment,
            "tracking_uri": tracking_uri,
            "run_key": run_key,
            "reused": "true" if reused else "false",
        }

    return _with_locked_client(tracking_uri, lock_path, log_run, max_attempts)


def log_study_table(
    *,
    tracking_uri: str,
    study: str,
    artifact_root: Path | str | None,
    role: str,
    records: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, float],
    files: Sequence[Path] = (),
    lock_path: Path | None = None,
) -> str:
    """One study-level run (e.g. the reference gate) holding ``records`` as an MLflow table.

    Idempotent: a run with the same content is reused; a changed one replaces it (the old run
    is tagged superseded, not deleted, so its history stays readable).
    """
    import pandas as pd

    digest = json_digest(
        {
            "records": [dict(r) for r in records],
            "metrics": dict(metrics),
            "files": sorted([p.name, sha256_file(p)] for p in files),
        }
    )

    def action(client: MlflowClient) -> str:
        experiment_id = _get_or_create_experiment(client, study, artifact_root)
        runs = list(_search_all(client, experiment_id, f"tags.`{ROLE_TAG}` = {_quote(role)}"))
        same = [r.info.run_id for r in runs if r.data.tags.get(HASH_TAG) == digest]
        for run in runs:
            superseded = "false" if same and run.info.run_id == same[0] else "true"
            if run.data.tags.get(SUPERSEDED_TAG, "false") != superseded:
                client.set_tag(run.info.run_id, SUPERSEDED_TAG, superseded)
        if same:
            return str(same[0])
        run = client.create_run(
            experiment_id,
            run_name=role,
            tags={ROLE_TAG: role, HASH_TAG: digest, SUPERSEDED_TAG: "false"},
        )
        run_id = str(run.info.run_id)
        client.log_table(run_id, data=pd.DataFrame(list(records)), artifact_file=f"{role}.json")
        for key, value in metrics.items():
            client.log_metric(run_id, key, float(value))
        for path in files:
            client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, "FINISHED")
        return run_id

    return _with_locked_client(tracking_uri, lock_path, action)


def close_removed_runs(
    *,
    tracking_uri: str,
    study: str,
    run_keys: Sequence[str],
    models: Sequence[str],
    lock_path: Path | None = None,
) -> list[str]:
    """Close and tag the runs of variants (and models) the config no longer has.

    A removed experiment's run would otherwise stay live beside the current ones and the
    mirror would no longer match the tables. Its run is tagged removed and superseded (not
    deleted: its history stays readable) and terminated if a killed job left it RUNNING; a
    parent run whose model is gone is tagged removed too. Returns the run ids it changed.
    """
    keep_keys, keep_models = set(run_keys), set(models)

    def action(client: MlflowClient) -> list[str]:
        experiment = client.get_experiment_by_name(study)
        if experiment is None:
            return []
        changed: list[str] = []
        for run in _search_all(client, str(experiment.experiment_id), ""):
            tags = run.data.tags
            key, role = tags.get(RUN_KEY_TAG), tags.get(ROLE_TAG)
            gone = (key is not None and key not in keep_keys) or (
                role == "parent" and tags.get(MODEL_TAG) not in keep_models
            )
            if not gone or tags.get(REMOVED_TAG) == "true":
                continue
            client.set_tag(run.info.run_id, REMOVED_TAG, "true")
            if key is not None:
                client.set_tag(run.info.run_id, SUPERSEDED_TAG, "true")
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, "KILLED")
            changed.append(str(run.info.run_id))
        return changed

    return _with_locked_client(tracking_uri, lock_path, action)
