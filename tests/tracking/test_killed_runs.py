"""A tracking job killed mid-upload leaves a RUNNING run; the rerun closes it (KILLED) and
tags it superseded instead of leaving it live beside the new one."""

from __future__ import annotations

from pathlib import Path

from coreml_bench.tracking.mlflow_store import (
    EXPERIMENT_TAG,
    MODEL_TAG,
    RUN_KEY_TAG,
    SUPERSEDED_TAG,
    TRIAL_TAG,
)
from variant_runs import STUDY, log_variant, store_uri


def test_a_killed_runs_leftover_is_closed_when_the_variant_is_logged_again(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store_uri(tmp_path))
    experiment = client.create_experiment(
        STUDY, artifact_location=(tmp_path / "results/mlflow/artifacts").as_uri()
    )
    # What a SIGKILL between create_run and set_terminated leaves behind.
    leftover = client.create_run(
        experiment,
        run_name="k4/trial1",
        tags={RUN_KEY_TAG: "m1/k4/trial1", MODEL_TAG: "m1", EXPERIMENT_TAG: "k4", TRIAL_TAG: "1"},
    )
    assert client.get_run(leftover.info.run_id).info.status == "RUNNING"

    logged = log_variant(tmp_path)

    old = client.get_run(leftover.info.run_id)
    assert old.info.status == "KILLED"
    assert old.data.tags[SUPERSEDED_TAG] == "true"
    new = client.get_run(logged["run_id"])
    assert new.info.status == "FINISHED" and SUPERSEDED_TAG not in new.data.tags
