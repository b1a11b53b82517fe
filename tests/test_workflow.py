"""Real `snakemake` runs of the workflow on a small config in a temporary directory."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
from helpers import ROOT, SMALL_CONFIG, dry_run_jobs, run_snakemake, snakemake_command, write_config

EXPERIMENTS = ["fp16", "kmeans", "int8", "prune"]


def _outputs(workdir: Path) -> dict[str, float]:
    """mtime of every file the workflow wrote, except logs/benchmarks/the MLflow store."""
    results = workdir / "results"
    skip = ("logs", "benchmarks", "mlflow")
    return {
        str(p.relative_to(results)): p.stat().st_mtime_ns
        for p in results.rglob("*")
        if p.is_file() and p.relative_to(results).parts[0] not in skip
    }


@pytest.fixture(scope="module")
def finished_run(small_study_run: Path) -> Path:
    return small_study_run


def test_tables_have_one_row_per_experiment_with_backends(finished_run: Path) -> None:
    with open(finished_run / "results/tables/summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["Config"] for r in rows] == ["Float16", "2 bit", "int8 per-channel",
                                           "Unstructured Sparsity 50%"]  # fmt: skip
    ratios = {r["Config"]: float(r["Compression Ratio"]) for r in rows}
    assert ratios["Float16"] == 1.0
    # Palettization to 2 bits must shrink far more than int8, which shrinks more than nothing.
    assert ratios["2 bit"] > ratios["int8 per-channel"] > 1.5
    assert 1.2 < ratios["Unstructured Sparsity 50%"] < 2.0
    for row in rows:
        assert row["Accuracy Backend"] == "mil-torch"
        assert row["Latency Backend"].startswith("host (host CPU")
        assert 0.0 <= float(row["Accuracy"]) <= 100.0
        assert float(row["Latency (ms)"]) > 0
        assert row["Images"] == "4"
    markdown = (finished_run / "results/tables/summary.md").read_text()
    assert "| Model Name" in markdown and "host latency is not device latency" in markdown


def test_plot_is_a_png(finished_run: Path) -> None:
    data = (finished_run / "results/plots/pareto.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_manifests_record_compression_ops(finished_run: Path) -> None:
    base = finished_run / "results/compressed/mnv3s"
    kmeans = json.loads((base / "kmeans/trial1/manifest.json").read_text())
    assert kmeans["op_counts"].get("constexpr_lut_to_dense", 0) > 0
    assert kmeans["weight_encodings"].get("constexpr_lut_to_dense", 0) > 0
    assert kmeans["timing"]["wall_seconds"] > 0 and kmeans["timing"]["peak_rss_mb"] > 0
    prune = json.loads((base / "prune/trial1/manifest.json").read_text())
    assert prune["op_counts"].get("constexpr_sparse_to_dense", 0) > 0
    int8 = json.loads((base / "int8/trial1/manifest.json").read_text())
    assert set(int8["op_counts"]) & {
        "constexpr_affine_dequantize",
        "constexpr_blockwise_shift_scale",
    }


def test_mlflow_has_every_run_with_artifacts(finished_run: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{finished_run / 'results/mlflow/mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("itest")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("coreml_bench.role") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert sorted(r.data.tags["coreml_bench.experiment"] for r in children) == sorted(EXPERIMENTS)
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["evaluation_backend"] == "mil-torch"
        assert "top1" in run.data.metrics and "latency_median_ms" in run.data.metrics
        assert run.data.params["model.architecture"] == "mobilenet_v3_small"
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert any(p.endswith(".mlpackage") for p in artifacts), artifacts


def test_report_is_a_browsable_html_page_with_the_tables_and_plot(finished_run: Path) -> None:
    report = finished_run / "report.html"
    run_snakemake(finished_run, "--report", str(report))
    html = report.read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "summary.csv" in html and "pareto.png" in html
    assert "gate.csv" in html and "gate.md" in html  # the reference gate's report


def test_second_run_is_a_noop(finished_run: Path) -> None:
    before = _outputs(finished_run)
    result = run_snakemake(finished_run)
    assert "Nothing to be done" in result.stdout + result.stderr
    assert _outputs(finished_run) == before


# What follows any change of a row's figures: the tables, the gate's report, the mirror.
TABLES = {"aggregate": 1, "publish_tables": 1, "reference_report": 1, "track": 1, "all": 1}


def _changed(edit: str) -> dict:
    config = json.loads(json.dumps(SMALL_CONFIG))
    if edit == "experiment parameter":
        config["experiments"][1]["compression"]["n_bits"] = 4
    elif edit == "new row":
        config["experiments"].append(
            {"id": "int4", "compression": {"algorithm": "quantize_linear", "dtype": "int4",
                                            "granularity": "per_block", "block_size": 32}}
        )  # fmt: skip
    elif edit == "removed row":
        config["experiments"] = [e for e in config["experiments"] if e["id"] != "prune"]
    elif edit == "evaluation data":
        config["data"]["limit"] = 3
    elif edit == "profiling setting":
        config["profiling"]["runs"] = 4
    elif edit == "tracking settings":
        config["tracking"] = {"log_packages": False}
    elif edit == "display name":
        config["experiments"][2]["label"] = "int8 (per channel)"
    elif edit == "model display name":
        config["models"][0]["display_name"] = "MobileNetV3 small (renamed)"
    elif edit == "training data":
        # Nothing of this study trains: a training split is read by no job.
        config["data"]["training"] = {"kind": "fashion_mnist", "split": "train"}
    elif edit != "no change":
        raise ValueError(edit)
    return config


# A new package is compiled for the executor, then evaluated and profiled.
RECOMPILED_VARIANT = {"compile_program": 1, "evaluate": 1, "profile": 1}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ("no change", {}),
        ("experiment parameter", {"compress": 1, **RECOMPILED_VARIANT, **TABLES}),
        ("new row", {"compress": 1, **RECOMPILED_VARIANT, **TABLES}),
        ("removed row", TABLES),
        ("evaluation data", {"evaluate": 4, **TABLES}),
        ("profiling setting", {"profile": 4, **TABLES}),
        ("tracking settings", {"track": 1, "all": 1}),
        # The tables print display names; no compute job sees them.
        ("display name", TABLES),
        # Published rows are found by the model's display name: renamed, it has none (no gate).
        ("model display name", {"aggregate": 1, "publish_tables": 1, "track": 1, "all": 1}),
        ("training data", {}),
    ],
)
def test_a_change_reruns_exactly_what_depends_on_it(
    finished_run: Path, edit: str, expected: dict[str, int]
) -> None:
    assert dry_run_jobs(finished_run, _changed(edit)) == expected


def test_a_stage_code_edit_reruns_that_stage(finished_run: Path, tmp_path: Path) -> None:
    """Snakemake hashes only the one-line job script: the rules' params carry the stage's
    code fingerprint instead, so an edit of evaluate's logic reruns every evaluate job."""
    import shutil

    copy = tmp_path / "workflow-copy"
    copy.mkdir()
    shutil.copy(ROOT / "Snakefile", copy / "Snakefile")
    shutil.copytree(
        ROOT / "workflow", copy / "workflow", ignore=shutil.ignore_patterns("__pycache__")
    )
    # The copy's default published table is another path: name the original one.
    published = ROOT / "workflow/coreml_bench/reference/published.csv"
    config = {**SMALL_CONFIG, "reference": {"published": str(published)}}
    assert dry_run_jobs(finished_run, config, copy / "Snakefile") == {}
    stage = copy / "workflow/coreml_bench/evaluate/metrics.py"
    stage.write_text(stage.read_text() + "\n# an edit of the evaluation logic\n")
    assert dry_run_jobs(finished_run, config, copy / "Snakefile") == {
        "evaluate": 4,
        **TABLES,
    }


def test_changing_one_experiment_reruns_only_its_jobs(finished_run: Path) -> None:
    before = _outputs(finished_run)
    changed = json.loads(json.dumps(SMALL_CONFIG))
    changed["experiments"][1]["compression"]["n_bits"] = 4
    write_config(finished_run, changed)
    run_snakemake(finished_run)
    after = _outputs(finished_run)
    rewritten = {path for path in before if after.get(path) != before[path]}
    expected = {
        "compressed/mnv3s/kmeans/trial1/manifest.json",
        "evaluation/mnv3s/kmeans/trial1.json",
        "profile/mnv3s/kmeans/trial1.json",
        "tracking/study.json",
        "aggregate/summary.csv",
        "aggregate/summary.md",
        "aggregate/pareto.png",
        "aggregate/frontier.png",
        "tables/summary.csv",
        "tables/summary.md",
        "plots/pareto.png",
        "plots/frontier.png",
        # MobileNetv3-small has published rows: the gate's report follows the new row.
        "reference/gate.md",
        "reference/gate.csv",
    }
    package_files = {p for p in rewritten if p.startswith("compressed/mnv3s/kmeans/trial1/model")}
    assert rewritten - package_files == expected
    with open(finished_run / "results/tables/summary.csv") as handle:
        assert "4 bit" in {row["Config"] for row in csv.DictReader(handle)}
    # The mirror logged the changed variant only; the other three kept their runs.
    mirror = json.loads((finished_run / "results/tracking/study.json").read_text())
    assert mirror["logged"] == ["mnv3s/kmeans/trial1"] and len(mirror["runs"]) == 4
    # The superseded MLflow run stays as history; the new one is the live one.
    db = sqlite3.connect(finished_run / "results/mlflow/mlflow.db")
    superseded = db.execute(
        "select count(*) from tags where key='coreml_bench.superseded' and value='true' and "
        "run_uuid not in (select run_uuid from tags where key='coreml_bench.role')"
    ).fetchone()[0]
    assert superseded == 1
    # So does the gate's table: a new run, the old one kept and tagged superseded.
    gate_runs = db.execute(
        "select t.value from tags t join tags r on t.run_uuid = r.run_uuid where "
        "r.key='coreml_bench.role' and r.value='reference_gate' and "
        "t.key='coreml_bench.superseded'"
    ).fetchall()
    assert sorted(v for (v,) in gate_runs) == ["false", "true"]


def test_invalid_config_stops_before_any_job(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(SMALL_CONFIG))
    bad["experiments"][1]["compression"]["n_bits"] = 5
    write_config(tmp_path, bad)
    result = run_snakemake(tmp_path, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "experiments[1].compression.palettize_kmeans.n_bits" in output and "(got 5)" in output
    assert not (tmp_path / "results").exists()


def test_stale_lists_results_of_another_environment_and_reruns_exactly_those(
    finished_run: Path,
) -> None:
    """Last in this module: it rewrites one record the way an older torch would have."""
    import subprocess
    import sys

    cli = [str(Path(sys.executable).with_name("coreml-bench")), "stale"]
    results = finished_run / "results"
    fresh = subprocess.run([*cli, str(results)], capture_output=True, text=True, check=False)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "up to date" in fresh.stdout

    record_path = results / "evaluation/mnv3s/int8/trial1.json"
    record = json.loads(record_path.read_text())
    torch_today = record["provenance"]["environment"]["torch"]
    record["provenance"]["environment"]["torch"] = "2.0.0"
    record_path.write_text(json.dumps(record))
    listed = subprocess.run([*cli, str(results)], capture_output=True, text=True, check=False)
    assert listed.returncode == 1
    assert listed.stdout.splitlines() == [
        f"{record_path}  [evaluate]  environment: torch 2.0.0 -> {torch_today}"
    ]

    # Everything after `--` is snakemake's: the same options run_snakemake passes.
    snakemake_options = snakemake_command(finished_run, "--cores", "2")[1:]
    rerun = subprocess.run(
        [*cli, str(results), "--rerun", "--", *snakemake_options],
        capture_output=True, text=True, check=False, cwd=finished_run,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert json.loads(record_path.read_text())["provenance"]["environment"]["torch"] == torch_today
    again = subprocess.run([*cli, str(results)], capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stdout
