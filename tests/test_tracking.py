"""The MLflow mirror against a real sqlite store, including parallel writers."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from coreml_bench.tracking import flatten, log_variant_run
from mlflow.tracking import MlflowClient


def _log(root: Path, model: str, experiment: str, top1: float = 70.0) -> dict[str, str]:
    artifact = root / f"{model}-{experiment}.json"
    artifact.write_text('{"x": 1}')
    package = root / "pkg.mlpackage"
    (package / "Data").mkdir(parents=True, exist_ok=True)
    (package / "Data" / "weight.bin").write_bytes(b"\x00" * 64)
    return log_variant_run(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        study="study",
        artifact_root=root / "artifacts",
        model_id=model,
        experiment_id=experiment,
        trial=1,
        params={"compression": {"algorithm": "palettize_kmeans", "n_bits": 4}, "tags": [1, 2]},
        metrics={"top1": top1, "latency_ms": 1.5, "missing": None},
        tags={"backend": "weights-torch"},
        artifact_files=[("evaluation", artifact)],
        artifact_dirs={"model.mlpackage": package},
        lock_path=root / ".lock",
    )


def _runs(root: Path) -> list:
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("study")
    return client.search_runs([experiment.experiment_id])


def test_flatten_nested_dicts_and_lists() -> None:
    flat = flatten({"a": {"b": 1, "c": [1, 2]}, "d": [{"e": "x"}], "f": None})
    assert flat == {"a.b": "1", "a.c": "[1, 2]", "d.0.e": "x", "f": "None"}


def test_run_is_nested_with_params_metrics_artifacts(tmp_path: Path) -> None:
    result = _log(tmp_path, "m1", "k4")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(result["run_id"])
    assert run.data.tags["mlflow.parentRunId"] == result["parent_run_id"]
    assert run.data.params["compression.n_bits"] == "4"
    assert run.data.metrics == {"top1": 70.0, "latency_ms": 1.5}
    assert run.info.status == "FINISHED"
    paths = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert paths == {"evaluation", "model.mlpackage"}
    stored = tmp_path / "artifacts" / run.info.run_id / "artifacts" / "model.mlpackage"
    assert (stored / "Data" / "weight.bin").read_bytes() == b"\x00" * 64


def test_logging_is_idempotent_and_changes_supersede(tmp_path: Path) -> None:
    first = _log(tmp_path, "m1", "k4")
    again = _log(tmp_path, "m1", "k4")
    assert again["run_id"] == first["run_id"] and again["reused"] == "true"
    assert len(_runs(tmp_path)) == 2  # parent + child
    changed = _log(tmp_path, "m1", "k4", top1=71.0)
    assert changed["run_id"] != first["run_id"] and changed["reused"] == "false"
    by_id = {r.info.run_id: r for r in _runs(tmp_path)}
    assert by_id[first["run_id"]].data.tags["coreml_bench.superseded"] == "true"
    assert "coreml_bench.superseded" not in by_id[changed["run_id"]].data.tags


def test_one_parent_per_model(tmp_path: Path) -> None:
    a = _log(tmp_path, "m1", "k4")
    b = _log(tmp_path, "m1", "int8")
    c = _log(tmp_path, "m2", "k4")
    assert a["parent_run_id"] == b["parent_run_id"] != c["parent_run_id"]


def _worker(root: str, model: str, index: int) -> None:
    for j in range(3):
        _log(Path(root), model, f"e{index}-{j}")


def test_parallel_writers_lose_nothing(tmp_path: Path) -> None:
    _log(tmp_path, "m0", "warmup")  # creates the schema once before the workers race
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(str(tmp_path), f"m{i % 2}", i)) for i in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    runs = _runs(tmp_path)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    parents = [r for r in runs if r.data.tags.get("coreml_bench.role") == "parent"]
    assert len(children) == 13
    assert sorted(r.data.tags["coreml_bench.model"] for r in parents) == ["m0", "m1"]
    assert all(r.info.status == "FINISHED" and r.data.metrics["top1"] == 70.0 for r in children)
