"""Unit tests of the stage modules that need no conversion: data, backends, aggregation."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from coreml_bench import evaluate, profile
from coreml_bench.aggregate import aggregate
from coreml_bench.data import DataError, image_folder, labelled_images
from coreml_bench.manifest import write_json_atomic
from coreml_bench.registry import BackendUnavailableError, Registry


def test_foolbox_sample_has_20_labelled_real_images() -> None:
    items = labelled_images({"evaluation": {"kind": "foolbox_imagenet_sample"}})
    assert len(items) == 20
    assert items[0][0].name == "imagenet_00_243.jpg" and items[0][1] == 243
    assert (
        len(labelled_images({"evaluation": {"kind": "foolbox_imagenet_sample"}, "limit": 3})) == 3
    )


def test_image_folder_layout_and_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        image_folder(tmp_path / "nowhere")
    (tmp_path / "flat.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"no class sub-folders \(found: \['flat.jpg'\]\)"):
        image_folder(tmp_path)
    for name in ("n02", "n01"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.JPEG").write_bytes(b"")
    assert [label for _p, label in image_folder(tmp_path)] == [0, 1]
    assert image_folder(tmp_path)[0][0].parent.name == "n01"


def test_auto_backends_depend_on_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    assert evaluate.resolve_backend("auto") == "mil-torch"
    assert profile.resolve_backend("auto") == "host"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert evaluate.resolve_backend("auto") == "coreml"
    assert profile.resolve_backend("auto") == "coreml"
    assert evaluate.resolve_backend("weights-torch") == "weights-torch"


@pytest.mark.skipif(sys.platform == "darwin", reason="the boundary is what Linux sees")
def test_coreml_backends_refuse_clearly_off_macos(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="needs darwin"):
        evaluate.evaluate_package(
            package=tmp_path / "x.mlpackage",
            weights=tmp_path / "w.pth",
            model_cfg={},
            data_cfg={},
            backend="coreml",
            output=tmp_path / "out.json",
            context={},
        )
    with pytest.raises(BackendUnavailableError, match="needs darwin"):
        profile.profile_package(
            package=tmp_path / "x.mlpackage",
            model_cfg={},
            profiling_cfg={"backend": "coreml"},
            output=tmp_path / "out.json",
            context={},
        )
    assert not (tmp_path / "out.json").exists()


def test_latency_stats() -> None:
    stats = profile.latency_stats([5.0, 1.0, 2.0, 3.0, 4.0, 10.0, 6.0, 7.0, 8.0, 9.0, 11.0])
    assert stats["latency_median_ms"] == 6.0
    assert stats["latency_p90_ms"] == 10.0
    assert stats["latency_min_ms"] == 1.0


def test_registry_rejects_duplicates_and_names_unknowns() -> None:
    registry: Registry[int] = Registry("widget")
    registry.add("a", 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("a", 2)
    with pytest.raises(KeyError, match="unknown widget 'b'; known: a"):
        registry["b"]


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
    row = {
        "model": "m",
        "model_name": "Model",
        "experiment": experiment,
        "trial": trial,
        "config_label": "Float16" if baseline else "2 bit",
        "algorithm": "none" if baseline else "palettize_kmeans",
    }
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


def test_atomic_json_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    write_json_atomic(target, {"ok": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {1j: 2})  # a complex key cannot be JSON
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is what a CPU machine sees")
def test_cuda_device_is_refused_clearly_without_a_gpu(tmp_path: Path) -> None:
    from coreml_bench.config import validate_config
    from coreml_bench.mil_executor import ProgramExecutor

    cfg = validate_config({"evaluation": {"device": "cuda"}, "profiling": {"device": "cuda"}})
    assert cfg.evaluation.device == "cuda" and cfg.profiling.device == "cuda"
    with pytest.raises(RuntimeError, match="no CUDA device"):
        ProgramExecutor(tmp_path / "x.mlpackage", device="cuda")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        profile.PROFILERS["host"].measure(tmp_path / "x.mlpackage", {}, {"device": "cuda"})
