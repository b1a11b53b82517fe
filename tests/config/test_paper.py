"""config/paper.yaml declares every row of every seed table and plans without the data."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from coreml_bench.config import load_config
from coreml_bench.reference import DEFAULT_PUBLISHED, load_published
from helpers import ROOT, run_snakemake

PAPER = ROOT / "config" / "paper.yaml"


def test_every_published_row_is_declared_once_and_nothing_else() -> None:
    cfg = load_config(PAPER, coremltools_check=False)
    reference = cfg.reference_params()
    assert reference is not None
    declared = [(d["model"], d["config"], d["workflow"]) for d in reference["declared"]]
    published = {row.key() for row in load_published(DEFAULT_PUBLISHED)}
    assert len(published) == 33  # distinct (model, config, workflow) rows over all six tables
    assert sorted(declared) == sorted(published)


def test_training_time_rows_use_apples_linked_config_and_three_trials() -> None:
    cfg = load_config(PAPER, coremltools_check=False)
    by_key = {}
    for d in cfg.reference_params()["declared"]:  # type: ignore[index]
        by_key[(d["model"], d["config"], d["workflow"])] = cfg.experiment(d["experiment_id"])
    links: dict[tuple[str, str, str], set[str]] = {}
    for row in load_published(DEFAULT_PUBLISHED):
        if row.workflow == "Training Time":
            # The rendered quantization page lost its links; the other pages carry them.
            links.setdefault(row.key(), set()).update([row.config_url] if row.config_url else [])
    assert len(links) == 17
    for key, urls in links.items():
        experiment = by_key[key]
        assert experiment.effective_trials() == 3, key
        declared = getattr(experiment.compression.config_yaml, "url", None)
        assert {declared} - {None} == urls, key  # no config where no page links one


def test_the_whole_paper_plans_here_without_imagenet_coco_or_internet(tmp_path: Path) -> None:
    shutil.copy(PAPER, tmp_path / "config.yaml")
    (tmp_path / "config").mkdir()
    shutil.copy(PAPER, tmp_path / "config" / "config.yaml")
    result = run_snakemake(tmp_path, "-n")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.MULTILINE))
    assert counts["compress_torch"] == "51"  # 17 training-time rows × 3 trials
    assert counts["train_baseline"] == "1"  # CenterNet on COCO, from the ResNet34 backbone
    assert counts["download_compression_config"] == "15"  # Apple's linked YAML configs
    assert counts["evaluate"] == "67"
    assert counts["reference_report"] == "1"
    # Dry runs log to stdout.
    assert "a real run stops on them" in result.stdout
    assert "/data/coco/train2017" in result.stdout
    # A real run refuses before any job, naming the missing data.
    refused = run_snakemake(tmp_path, check=False)
    assert refused.returncode != 0
    assert "data.training.path: folder '/data/imagenet/train' does not exist" in (
        refused.stdout + refused.stderr
    )
    assert not (tmp_path / "results").exists()
