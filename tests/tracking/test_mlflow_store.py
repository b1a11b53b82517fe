"""The MLflow mirror against a real sqlite store, including parallel writers."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path
from typing import Any

import pytest
from coreml_bench.tracking import mlflow_store
from coreml_bench.tracking.mlflow_store import (
    flatten,
    mlflow_ui_command,
    with_retries,
)
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from variant_runs import (
    PACKAGE_FILES,
    STUDY,
    log_variant,
    log_variants,
    store_uri,
    variant_inputs,
)


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Migrating a fresh sqlite store takes seconds; do it once and copy the file per test.
    root = tmp_path_factory.mktemp("template")
    MlflowClient(store_uri(root)).search_experiments()
    return root / "mlflow.db"


@pytest.fixture
def root(tmp_path: Path, migrated_db: Path) -> Path:
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    return tmp_path


def _runs(root: Path) -> list[Run]:
    client = MlflowClient(store_uri(root))
    experiment = client.get_experiment_by_name(STUDY)
    assert experiment is not None
    return list(client.search_runs([experiment.experiment_id], max_results=1000))


def _children(runs: list[Run]) -> list[Run]:
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def _parents(runs: list[Run]) -> list[Run]:
    return [r for r in runs if r.data.tags.get("coreml_bench.role") == "parent"]


def _artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for info in client.list_artifacts(run_id, path):
        found |= _artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return found


def test_flatten_nested_dicts_and_lists() -> None:
    nested = {
        "a": {"b": 1, "c": [1, {"d": True}]},
        "e": [{"f": "x"}, [2, 3]],
        "g": None,
        "empty": {"list": [], "dict": {}},
    }
    assert flatten(nested) == {
        "a.b": "1",
        "a.c.0": "1",
        "a.c.1.d": "True",
        "e.0.f": "x",
        "e.1.0": "2",
        "e.1.1": "3",
        "g": "None",
        "empty.list": "[]",
        "empty.dict": "{}",
    }
    assert flatten({"a": {"b": 1}}, prefix="p", sep="/") == {"p/a/b": "1"}
    assert flatten({}) == {}


def test_ui_command() -> None:
    assert mlflow_ui_command("sqlite:///r/m.db") == "mlflow ui --backend-store-uri sqlite:///r/m.db"


def test_run_is_nested_with_params_metrics_tags_artifacts(root: Path) -> None:
    result = log_variant(root)
    client = MlflowClient(store_uri(root))
    experiment = client.get_experiment_by_name(STUDY)
    assert experiment is not None and result["experiment_id"] == experiment.experiment_id
    artifact_root = root / "results" / "mlflow" / "artifacts"
    assert experiment.artifact_location == artifact_root.resolve().as_uri()
    assert result["run_key"] == "m1/k4/trial1" and result["reused"] == "false"
    assert result["tracking_uri"] == store_uri(root)

    parent = client.get_run(result["parent_run_id"])
    assert parent.data.tags["coreml_bench.role"] == "parent"
    assert parent.data.tags["coreml_bench.model"] == "m1"
    assert parent.info.run_name == "m1" and parent.info.status == "FINISHED"

    run = client.get_run(result["run_id"])
    assert run.info.run_name == "k4/trial1" and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == result["parent_run_id"]
    assert run.data.params == {
        "compression.algorithm": "palettize_kmeans",
        "compression.n_bits": "4",
        "shape.0": "1",
        "shape.1": "3",
        "shape.2": "8",
    }
    assert run.data.metrics == {"top1": 70.0, "latency_ms": 1.5}  # None and NaN skipped
    tags = run.data.tags
    assert tags["backend"] == "weights-torch"
    assert tags["coreml_bench.run_key"] == "m1/k4/trial1"
    assert (tags["coreml_bench.model"], tags["coreml_bench.experiment"]) == ("m1", "k4")
    assert tags["coreml_bench.trial"] == "1" and len(tags["coreml_bench.content_hash"]) == 64
    assert "coreml_bench.superseded" not in tags

    expected = {
        "evaluation.json",
        "logs/convert/evaluation.json",
        *(f"model.mlpackage/{relative}" for relative in PACKAGE_FILES),
    }
    assert _artifact_paths(client, result["run_id"]) == expected
    # The bytes live under artifact_root (i.e. results/), not under the CWD's ./mlruns.
    stored = artifact_root / result["run_id"] / "artifacts"
    evaluation, package = variant_inputs(root, "m1", "k4")
    assert (stored / "evaluation.json").read_bytes() == evaluation.read_bytes()
    assert (stored / "logs/convert/evaluation.json").read_bytes() == evaluation.read_bytes()
    for relative in PACKAGE_FILES:
        local = (package / relative).read_bytes()
        assert (stored / "model.mlpackage" / relative).read_bytes() == local
    assert run.info.artifact_uri == stored.resolve().as_uri()


def test_logging_is_idempotent_and_changes_supersede(root: Path) -> None:
    first = log_variant(root)
    again = log_variant(root)
    assert again["run_id"] == first["run_id"] and again["reused"] == "true"
    assert len(_runs(root)) == 2  # parent + child

    changed = log_variant(root, top1=71.0)
    assert changed["run_id"] != first["run_id"] and changed["reused"] == "false"
    by_id = {r.info.run_id: r for r in _runs(root)}
    assert len(by_id) == 3
    assert by_id[first["run_id"]].data.tags["coreml_bench.superseded"] == "true"
    assert "coreml_bench.superseded" not in by_id[changed["run_id"]].data.tags
    assert changed["parent_run_id"] == first["parent_run_id"]

    # Changed artifact bytes alone count as new content too.
    evaluation, _ = variant_inputs(root, "m1", "k4")
    evaluation.write_text('{"top1": 71.0}')
    rewritten = log_variant(root, top1=71.0)
    assert rewritten["reused"] == "false"
    assert log_variant(root, top1=71.0)["run_id"] == rewritten["run_id"]

    # Going back to earlier content makes a new live run instead of reviving a superseded one.
    evaluation.write_text('{"top1": 70.0}')
    back = log_variant(root)
    assert back["reused"] == "false" and back["run_id"] != first["run_id"]
    live = [r for r in _children(_runs(root)) if "coreml_bench.superseded" not in r.data.tags]
    assert [r.info.run_id for r in live] == [back["run_id"]]


def test_one_parent_per_model(root: Path) -> None:
    a = log_variant(root, "m1", "k4")
    b = log_variant(root, "m1", "int8")
    c = log_variant(root, "m2", "k4")
    assert a["parent_run_id"] == b["parent_run_id"] != c["parent_run_id"]
    assert len({a["experiment_id"], b["experiment_id"], c["experiment_id"]}) == 1
    runs = _runs(root)
    assert sorted(r.data.tags["coreml_bench.model"] for r in _parents(runs)) == ["m1", "m2"]
    assert len(_children(runs)) == 3


def test_long_params_are_truncated_and_noted(root: Path) -> None:
    result = log_variant(root, params={"notes": "x" * 7000, "short": "y"}, lock=False)
    run = MlflowClient(store_uri(root)).get_run(result["run_id"])
    assert len(run.data.params["notes"]) == 6000
    assert run.data.params["notes"].endswith("[truncated from 7000 chars]")
    assert run.data.params["short"] == "y"
    assert run.data.tags["coreml_bench.truncated_params"] == "notes"


def test_many_params_are_batched(root: Path) -> None:
    params = {f"p{i:03d}": i for i in range(250)}  # > 100, MLflow's per-batch cap
    result = log_variant(root, params=params)
    assert len(MlflowClient(store_uri(root)).get_run(result["run_id"]).data.params) == 250


def test_failed_upload_marks_run_failed_and_is_retried(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    with monkeypatch.context() as patch:
        # Every upload fails: the store logs package directories file by file.
        patch.setattr(MlflowClient, "log_artifact", broken)
        patch.setattr(MlflowClient, "log_artifacts", broken)
        with pytest.raises(RuntimeError, match="disk full"):
            log_variant(root)
    [failed] = _children(_runs(root))
    assert failed.info.status == "FAILED"

    retried = log_variant(root)
    assert retried["reused"] == "false" and retried["run_id"] != failed.info.run_id
    by_id = {r.info.run_id: r for r in _runs(root)}
    assert by_id[failed.info.run_id].data.tags["coreml_bench.superseded"] == "true"
    assert by_id[retried["run_id"]].info.status == "FINISHED"


def test_missing_artifact_dir_fails_before_logging(root: Path) -> None:
    with pytest.raises(NotADirectoryError):
        log_variant(root, artifact_dirs={"model.mlpackage": root / "absent"})
    assert MlflowClient(store_uri(root)).get_experiment_by_name(STUDY) is None


def test_database_locked_is_retried(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlflow_store.time, "sleep", lambda seconds: None)
    original = MlflowClient.create_run
    calls = {"n": 0}

    def flaky(self: MlflowClient, *args: Any, **kwargs: Any) -> Run:
        calls["n"] += 1
        if calls["n"] == 2:  # the child's create_run, after the parent already exists
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "create_run", flaky)
    result = log_variant(root)
    runs = _runs(root)
    assert len(_parents(runs)) == 1 and [r.info.run_id for r in _children(runs)] == [
        result["run_id"]
    ]


def test_with_retries_backs_off_only_on_lock_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    monkeypatch.setattr(mlflow_store.time, "sleep", delays.append)
    attempts = {"n": 0}

    def locked_twice() -> str:
        attempts["n"] += 1
        if attempts["n"] <= 2:
            try:
                raise OSError("database is locked")
            except OSError as error:  # wrapped, as SQLAlchemy/MLflow do
                raise RuntimeError("write failed") from error
        return "ok"

    assert with_retries(locked_twice, max_attempts=5) == "ok"
    assert len(delays) == 2 and delays[1] > 0
    with pytest.raises(ValueError):
        with_retries(lambda: (_ for _ in ()).throw(ValueError("other")), max_attempts=5)
    with pytest.raises(OSError):
        with_retries(lambda: (_ for _ in ()).throw(OSError("database is locked")), max_attempts=3)
    assert len(delays) == 4


def test_parallel_writers_lose_nothing(root: Path) -> None:
    # The store is already migrated (fixture); the experiment and parents are raced for.
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=log_variants, args=(str(root), f"m{i % 2}", i)) for i in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]

    client = MlflowClient(store_uri(root))
    assert [e.name for e in client.search_experiments()].count(STUDY) == 1
    runs = _runs(root)
    children, parents = _children(runs), _parents(runs)
    assert len(children) == 12
    assert sorted(r.data.tags["coreml_bench.model"] for r in parents) == ["m0", "m1"]
    parent_of = {r.data.tags["coreml_bench.model"]: r.info.run_id for r in parents}
    expected_keys = {f"m{i % 2}/e{i}-{j}/trial1" for i in range(4) for j in range(3)}
    assert {r.data.tags["coreml_bench.run_key"] for r in children} == expected_keys
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.metrics == {"top1": 70.0, "latency_ms": 1.5}
        assert run.data.tags["mlflow.parentRunId"] == parent_of[run.data.tags["coreml_bench.model"]]
        assert "coreml_bench.superseded" not in run.data.tags
