"""Beyond the paper through the workflow: per-layer sensitivity, the budgeted search written
as coremltools' per-op config and compressed as a row, the tables, plots and MLflow runs;
changing the calibration reruns the measurements and the search, not the compressions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import dry_run_jobs, run_snakemake, write_config

FASHION = Path("/usr/share/datasets/fashion-mnist")
CONFIG = {
    "study": "beyond",
    "models": [
        {
            "id": "cnn",
            "architecture": "fashion_cnn",
            "num_classes": 10,
            "source": {"kind": "random", "seed": 0},
        }
    ],
    "experiments": [
        {"id": "fp16", "compression": {"algorithm": "none"}},
        {"id": "k4", "compression": {"algorithm": "palettize_kmeans", "n_bits": 4}},
        {"id": "k2", "compression": {"algorithm": "palettize_kmeans", "n_bits": 2}},
        {"id": "w8a8", "compression": {"algorithm": "quantize_activations_ptq"}},
        {
            "id": "mixed",
            "compression": {
                "algorithm": "mixed_precision",
                "candidates": ["k4", "k2"],
                "size_of": "k4",
            },
        },
    ],
    "sensitivity": {"experiments": ["k4"], "calibration": {"views_per_image": 2}},
    "data": {"evaluation": {"kind": "fashion_mnist", "root": str(FASHION)}, "limit": 16},
    "profiling": {"runs": 3, "warmup": 1},
}


@pytest.fixture(scope="module")
def beyond_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("beyond")
    write_config(work, CONFIG)
    run_snakemake(work)
    return work


def test_every_setting_is_measured_per_tensor(beyond_run: Path) -> None:
    folder = beyond_run / "results/sensitivity/cnn"
    measured = sorted(p.stem for p in folder.glob("*.json"))
    assert measured == ["k2", "k4"]  # listed, plus the search's candidates, once each
    for name in measured:
        record = json.loads((folder / f"{name}.json").read_text())
        assert record["backend"] == "mil-torch"
        assert record["calibration"]["n_samples"] == 32  # 16 images x 2 views
        assert len(record["layers"]) == 4
        assert (beyond_run / f"results/plots/sensitivity/cnn/{name}.png").stat().st_size > 0
    table = (beyond_run / "results/tables/sensitivity.csv").read_text().splitlines()
    assert len(table) == 1 + 2 * 4


def test_the_search_is_a_row_within_its_budget(beyond_run: Path) -> None:
    results = beyond_run / "results"
    search = json.loads((results / "mixed_precision/cnn/mixed/search.json").read_text())
    k4 = json.loads((results / "compressed/cnn/k4/trial1/manifest.json").read_text())
    mixed = json.loads((results / "compressed/cnn/mixed/trial1/manifest.json").read_text())
    assert search["budget_bytes"] == k4["package_bytes"]
    assert mixed["package_bytes"] <= search["budget_bytes"]
    assert (
        abs(mixed["package_bytes"] - search["predicted_package_bytes"])
        < 0.005 * mixed["package_bytes"]
    )
    selection = yaml.safe_load((results / "mixed_precision/cnn/mixed/selection.yaml").read_text())
    named = {n for c in selection.values() for n in c["op_name_configs"]}
    assert named == {c["const_name"] for c in search["choices"] if c["setting"] != "fp16"}
    summary = (results / "tables/summary.csv").read_text()
    assert "mixed, size of k4" in summary and "Mixed Precision (searched)" in summary
    assert (results / "plots/frontier.png").stat().st_size > 0
    evaluation = json.loads((results / "evaluation/cnn/mixed/trial1.json").read_text())
    assert evaluation["backend"] == "mil-torch" and evaluation["metrics"]["n_images"] == 16


def test_w8a8_is_calibrated_by_the_executor_and_scored(beyond_run: Path) -> None:
    results = beyond_run / "results"
    manifest = json.loads((results / "compressed/cnn/w8a8/trial1/manifest.json").read_text())
    assert manifest["op_counts"]["quantize"] >= 5 and manifest["workflow"] == "Calibration"
    log = (results / "logs/compress/cnn/w8a8/trial1.log").read_text()
    assert "calibrating activation ranges on 32 samples with the executor" in log
    evaluation = json.loads((results / "evaluation/cnn/w8a8/trial1.json").read_text())
    assert evaluation["backend"] == "mil-torch"
    assert "W8A8 (PTQ, executor calibration)" in (results / "tables/summary.csv").read_text()


def test_mlflow_holds_the_sensitivity_table_and_the_search(beyond_run: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{beyond_run / 'results/mlflow/mlflow.db'}")
    experiment = client.get_experiment_by_name("beyond")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    roles = {r.data.tags.get("coreml_bench.role"): r for r in runs}
    sensitivity = roles["sensitivity"]
    assert sensitivity.data.metrics["tensors_measured"] == 8
    artifacts = {a.path for a in client.list_artifacts(sensitivity.info.run_id)}
    assert "sensitivity.md" in " ".join(artifacts)
    assert roles["mixed_precision"].data.metrics["searches"] == 1
    rows = [r for r in runs if r.data.tags.get("coreml_bench.experiment") == "mixed"]
    assert len(rows) == 1 and "top1" in rows[0].data.metrics


def test_new_calibration_reruns_measurements_not_compressions(beyond_run: Path) -> None:
    changed = json.loads(json.dumps(CONFIG))
    changed["sensitivity"]["calibration"]["seed"] = 1
    jobs = dry_run_jobs(beyond_run, changed)
    assert jobs["sensitivity"] == 2 and jobs["sensitivity_reference"] == 1
    assert jobs["search_mixed_precision"] == 1
    # The searched row (its selection may change) and W8A8 (calibrated on the split).
    assert jobs["compress"] == 2
    assert "convert" not in jobs and "compile_program" in jobs
