"""The baseline a ``train`` model source trains: what the config demands, and the workflow
training it (real Fashion-MNIST, real snakemake).

Needs Debian's ``dataset-fashion-mnist`` (``.ci/run`` installs it).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import fashion
import pytest
from coreml_bench.config import ConfigError, check_local_paths, validate_config
from helpers import run_snakemake, write_config


@pytest.fixture(scope="module", autouse=True)
def _fashion_mnist_installed() -> None:
    fashion.require_fashion_mnist()


def test_training_source_needs_training_data_and_the_files(tmp_path: Path) -> None:
    model = {
        "id": "cnn",
        "architecture": "fashion_cnn",
        "source": {"kind": "train"},
        "evaluation_data": {"kind": "fashion_mnist"},
    }
    with pytest.raises(ConfigError, match=r"models\[0\] \('cnn'\): \['source'\] need a training"):
        validate_config({"models": [model]})
    cfg = validate_config(
        {"models": [model], "data": {"training": {"kind": "fashion_mnist", "root": str(tmp_path)}}}
    )
    with pytest.raises(ConfigError, match=r"data.training.root: .* lacks \['train-images"):
        check_local_paths(cfg)
    with pytest.raises(ConfigError, match="preprocessing has 3 mean/std values but architecture"):
        validate_config(
            {
                "models": [
                    {
                        **model,
                        "preprocessing": {
                            "resize": 28,
                            "crop_size": 28,
                            "mean": [0.5, 0.5, 0.5],
                            "std": [0.5, 0.5, 0.5],
                        },
                    }
                ],
                "data": {"training": {"kind": "fashion_mnist"}},
            }
        )


def test_workflow_trains_the_baseline_then_compresses_it(tmp_path: Path) -> None:
    """Real snakemake: train (tiny) → convert → k-means → evaluate → profile → table."""
    config = {
        "study": "fashion",
        "models": [
            {
                "id": "cnn",
                "architecture": "fashion_cnn",
                "num_classes": 10,
                "source": {
                    "kind": "train",
                    "recipe": fashion.short_recipe().model_dump(mode="json"),
                },
            }
        ],
        "experiments": [
            {"id": "fp16", "compression": {"algorithm": "none"}},
            {"id": "kmeans-4bit", "compression": {"algorithm": "palettize_kmeans", "n_bits": 4}},
        ],
        "data": fashion.DATA,
        "profiling": {"runs": 3, "warmup": 1},
        "tracking": {"enabled": False},
    }
    write_config(tmp_path, config)
    run_snakemake(tmp_path)
    manifest = json.loads((tmp_path / "results/weights/cnn.json").read_text())
    assert manifest["stage"] == "train" and manifest["resumed_from_epoch"] == 0
    assert len(manifest["history"]) == 2
    with open(tmp_path / "results/tables/summary.csv") as handle:
        rows = {r["Config"]: r for r in csv.DictReader(handle)}
    assert float(rows["Float16"]["Accuracy"]) == pytest.approx(
        manifest["history"][-1]["val_top1"], abs=1.0
    )  # the fp16 package scores what the fp32 model scored on the same 200 images
    assert float(rows["4 bit"]["Compression Ratio"]) > 3

    # The weights go missing: asked for again, the job finds the finished run's checkpoint
    # and only re-saves (Snakemake alone would not rerun it: everything downstream exists).
    (tmp_path / "results/weights/cnn.pth").unlink()
    run_snakemake(tmp_path, "results/weights/cnn.pth")
    manifest = json.loads((tmp_path / "results/weights/cnn.json").read_text())
    assert manifest["resumed_from_epoch"] == 2
