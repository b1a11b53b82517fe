"""The seed tables' layout: records joined per variant, trials folded into mean ± std."""

from __future__ import annotations

from pathlib import Path

from coreml_bench.aggregate.stage import aggregate
from coreml_bench.aggregate.tables import TableRow
from coreml_bench.io import write_json_atomic


def _variant_files(root: Path, experiment: str, trial: int, top1: float, ratio: float) -> tuple:
    manifest = root / f"{experiment}-{trial}-manifest.json"
    baseline = experiment == "fp16"
    write_json_atomic(
        manifest,
        {
            "stage": "convert" if baseline else "compress",
            "algorithm_display": "K-Means",
            "workflow": "Post Training",
            "compression_ratio_package": ratio,
            "compression_ratio_weights": ratio + 0.01,
            "package_bytes": int(10e6 / ratio),
        },
    )
    evaluation = root / f"{experiment}-{trial}-eval.json"
    write_json_atomic(
        evaluation,
        {
            "backend": "weights-torch",
            "metrics": {
                "metric": "Top-1 (%)",
                "accuracy": top1,
                "top1": top1,
                "top5": 99.0,
                "n_images": 20,
            },
        },
    )
    prof = root / f"{experiment}-{trial}-profile.json"
    write_json_atomic(
        prof,
        {
            "backend": "host",
            "runs": 30,
            "warmup": 5,
            "latency": {
                "latency_median_ms": 2.0 + trial,
                "latency_p90_ms": 3.0,
                "device": "host CPU: test",
                "os": "Linux 6",
                "compute_units": "CPU",
            },
            "static": {"parameters": 10, "macs": 100},
        },
    )
    row = TableRow(
        model="m",
        model_name="Model",
        experiment=experiment,
        trial=trial,
        config_label="Float16" if baseline else "2 bit",
        algorithm="none" if baseline else "palettize_kmeans",
    )
    return row, manifest, evaluation, prof


def test_aggregate_folds_trials_into_mean_std(tmp_path: Path) -> None:
    variants = [
        _variant_files(tmp_path, "fp16", 1, 71.86, 1.0),
        _variant_files(tmp_path, "k2", 1, 68.0, 5.9),
        _variant_files(tmp_path, "k2", 2, 69.0, 5.9),
        _variant_files(tmp_path, "k2", 3, 70.0, 5.9),
    ]
    rows, manifests, evaluations, profiles = (list(x) for x in zip(*variants, strict=True))
    table = aggregate(
        manifests=manifests,
        evaluations=evaluations,
        profiles=profiles,
        rows=rows,
        table_csv=tmp_path / "t.csv",
        table_md=tmp_path / "t.md",
        plot=tmp_path / "p.png",
    )
    assert list(table.columns[:6]) == [
        "Model Name", "Config", "Optimization Algorithm", "Compression Ratio", "Accuracy",
        "Latency (ms)",
    ]  # fmt: skip
    records = table.to_dict("records")
    assert records[0]["Accuracy"] == "71.86" and records[0]["Compression Ratio"] == "1.00"
    assert records[1]["Accuracy"] == "69.00 ± 1.00" and records[1]["Trials"] == 3
    assert records[1]["Latency (ms)"] == "4.000 ± 1.000"
    assert records[1]["Latency Backend"] == "host (host CPU: test)"
    assert records[1]["Latency Setup"] == "CPU, Linux 6, median of N=30 after 5 warm-up"
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert "host latency is not device latency" in (tmp_path / "t.md").read_text()
