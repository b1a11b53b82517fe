"""The study-level mirror's guarantees: studies sharing one new sqlite store lose no run, a
tracking server decides where artifacts go, removed variants' runs are closed."""

from __future__ import annotations

import multiprocessing
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from coreml_bench.tracking.mlflow_store import (
    EXPERIMENT_KIND_TAG,
    REMOVED_TAG,
    SUPERSEDED_TAG,
    artifact_location,
    close_removed_runs,
    store_lock_path,
)
from variant_runs import STUDY, log_study_from_its_own_directory, log_variant


def test_two_studies_creating_one_new_store_lose_no_run(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    database = tmp_path / "shared" / "mlflow.db"
    context = multiprocessing.get_context("spawn")
    workers = []
    for index in range(2):
        workdir = tmp_path / f"study{index}"
        workdir.mkdir()
        workers.append(
            context.Process(
                target=log_study_from_its_own_directory, args=(str(workdir), str(database), index)
            )
        )
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [worker.exitcode for worker in workers] == [0, 0]
    # One lock beside the database, whatever the working directory; no staging file left.
    assert store_lock_path(f"sqlite:///{database}") == database.with_name("mlflow.db.lock")
    assert sorted(p.name for p in database.parent.iterdir() if "creating" in p.name) == []

    client = MlflowClient(f"sqlite:///{database}")
    for index in range(2):
        experiment = client.get_experiment_by_name(f"study-{index}")
        assert experiment is not None
        assert experiment.tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
        assert experiment.artifact_location == (database.parent / "artifacts").as_uri()
        runs = client.search_runs([experiment.experiment_id])
        children = [r for r in runs if "coreml_bench.run_key" in r.data.tags]
        assert len(children) == 4 and {r.info.status for r in children} == {"FINISHED"}


def test_removed_variants_runs_are_closed_and_tagged(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    kept, removed = log_variant(tmp_path, "m1", "k4"), log_variant(tmp_path, "m2", "k2")
    uri = kept["tracking_uri"]
    changed = close_removed_runs(tracking_uri=uri, study=STUDY, run_keys=["m1/k4/trial1"],
                                 models=["m1"])  # fmt: skip
    client = MlflowClient(uri)
    gone = client.get_run(removed["run_id"])
    assert gone.data.tags[REMOVED_TAG] == "true" and gone.data.tags[SUPERSEDED_TAG] == "true"
    parent = client.get_run(removed["parent_run_id"])
    assert parent.data.tags[REMOVED_TAG] == "true"
    assert set(changed) == {removed["run_id"], removed["parent_run_id"]}
    live = client.get_run(kept["run_id"])
    assert REMOVED_TAG not in live.data.tags and SUPERSEDED_TAG not in live.data.tags
    # Idempotent: a second pass changes nothing.
    again = close_removed_runs(tracking_uri=uri, study=STUDY, run_keys=["m1/k4/trial1"],
                               models=["m1"])  # fmt: skip
    assert again == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_with_a_tracking_server_artifacts_go_where_the_server_says(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    port = _free_port()
    destination = tmp_path / "server-artifacts"
    command = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination", str(destination),
    ]  # fmt: skip
    server = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(server.stderr.read().decode()[-3000:]) from None
                time.sleep(0.5)
        workdir = tmp_path / "study"
        assert artifact_location(uri) is None  # the workflow names no location for a server
        logged = log_variant(workdir, tracking_uri=uri, artifact_root=None, lock_path=None)
        run = MlflowClient(uri).get_run(logged["run_id"])
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        stored = {p.relative_to(destination).as_posix() for p in destination.rglob("*.json")}
        assert any(p.endswith("evaluation.json") for p in stored), stored
        assert not (workdir / "results" / "mlflow").exists()
        assert not (tmp_path / "mlruns").exists()
    finally:
        server.terminate()
        server.wait(timeout=30)
