"""The seeds' models beyond the quickstart through the workflow: MobileViTv2 (timm) and
CenterNet-ResNet34 from random weights; a published .mlpackage.zip enters after convert
(served by a real HTTP server on 127.0.0.1, checksum-checked).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from coreml_bench.config import DataConfig, ModelConfig
from coreml_bench.data import evaluation_loader
from coreml_bench.executor import ProgramExecutor
from helpers import ROOT, run_snakemake, serve_directory, write_config, zip_package

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _published_config(url: str, sha256: str | None) -> dict:
    return {
        "study": "published",
        "models": [
            {
                "id": "published",
                "architecture": "fashion_cnn",
                "num_classes": 10,
                "source": {"kind": "coreml_package", "url": url, "sha256": sha256},
            }
        ],
        "experiments": [
            {"id": "fp16", "compression": {"algorithm": "none"}},
            {"id": "k4", "compression": {"algorithm": "palettize_kmeans", "n_bits": 4}},
        ],
        "data": {"evaluation": {"kind": "fashion_mnist", "root": str(FASHION)}, "limit": 64},
        "profiling": {"runs": 3, "warmup": 1},
        "tracking": {"enabled": False},
    }


def test_published_package_enters_after_convert(fashion_package: Path, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    archive = zip_package(fashion_package, served / "FashionCNN.mlpackage.zip")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with serve_directory(served) as base:
        url = f"{base}/FashionCNN.mlpackage.zip"
        # A wrong checksum stops the chain with no package left behind.
        bad = tmp_path / "bad"
        write_config(bad, _published_config(url, "0" * 64))
        result = run_snakemake(bad, check=False)
        assert result.returncode != 0
        log = (bad / "results/logs/import_package/published.log").read_text()
        assert f"got {digest}" in log
        assert not (bad / "results/converted/published/fp16.mlpackage").exists()

        work = tmp_path / "work"
        write_config(work, _published_config(url, digest))
        run_snakemake(work)
    manifest = json.loads((work / "results/converted/published/fp16.json").read_text())
    assert manifest["stage"] == "convert" and manifest["source"]["verified"] == "sha256"
    assert manifest["source"]["sha256"] == digest
    assert manifest["input"] == {"name": "image", "type": "multiArrayType", "shape": [1, 1, 28, 28]}
    assert not list((work / "results").glob("weights/*"))  # no checkpoint, no convert job
    assert not (work / "results/logs/convert").exists()
    compressed = json.loads(
        (work / "results/compressed/published/k4/trial1/manifest.json").read_text()
    )
    assert "constexpr_lut_to_dense" in compressed["op_counts"]
    evaluation = json.loads((work / "results/evaluation/published/fp16/trial1.json").read_text())
    assert evaluation["backend"] == "mil-torch" and evaluation["metrics"]["n_images"] == 64
    # The imported package is the served one: same predictions as executing it directly.
    config = _published_config(url, digest)
    data = DataConfig.model_validate(config["data"]).evaluation_selection()
    model = ModelConfig.model_validate(config["models"][0]).spec()
    loader = evaluation_loader(data, model.preprocessing)
    executor = ProgramExecutor(fashion_package)
    direct = torch.cat([executor(images).argmax(1) for images, _ in loader]).tolist()
    assert evaluation["predictions"] == direct
    table = (work / "results/tables/summary.csv").read_text()
    assert "FashionCNN" in table and "K-Means" in table


# Opt-in (2 min): CenterNet through the workflow is also the detection sample's run
# (tests/config/test_sample_configs.py) and MobileViT's program runs in tests/executor; the
# default suite stays under 20 minutes with the SLURM test in it.
@pytest.mark.slow
def test_mobilevit_and_centernet_run_through_the_workflow(tmp_path: Path) -> None:
    """Random weights (labelled so), real images: classification top-1 and detection mAP rows."""
    config = {
        "study": "paper-smoke",
        "models": [
            {"id": "mobilevitv2", "architecture": "mobilevitv2_100", "source": {"kind": "random"}},
            {
                "id": "centernet",
                "architecture": "centernet_resnet34",
                "source": {"kind": "random"},
                "num_classes": 1,
                "evaluation_data": {
                    "kind": "deepforest_sample", "wheel_dir": str(ROOT / ".venv/fixtures")
                },
            },
        ],
        "experiments": [
            {"id": "fp16", "compression": {"algorithm": "none"}},
            {"id": "k6", "compression": {"algorithm": "palettize_kmeans", "n_bits": 6}},
        ],
        "data": {"limit": 2},
        "profiling": {"runs": 2, "warmup": 1},
        "tracking": {"enabled": False},
    }  # fmt: skip
    write_config(tmp_path, config)
    run_snakemake(tmp_path)
    rows = (tmp_path / "results/tables/summary.csv").read_text().splitlines()
    assert len(rows) == 5
    assert sum("MobileViTv2-1.0" in r and "Top-1 (%)" in r for r in rows) == 2
    assert sum("CenterNet (ResNet34 backbone)" in r and "mAP@[.5:.95] (%)" in r for r in rows) == 2
    detection = json.loads((tmp_path / "results/evaluation/centernet/k6/trial1.json").read_text())
    assert detection["dataset"]["kind"] == "deepforest_sample"
    assert detection["metrics"]["n_images"] == 2 and detection["metrics"]["n_detections"] == 200
    source = json.loads((tmp_path / "results/weights/centernet.json").read_text())
    assert source["kind"] == "random"  # the row's provenance says these are not trained weights
    shutil.rmtree(tmp_path / "results")
