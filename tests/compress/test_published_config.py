"""A coremltools config published by URL (as Apple links one behind each training-time row):
downloaded once by rule download_compression_config, checked against its sha256, validated by
coremltools, and read by the experiment's fine-tuning jobs. Served by a real local HTTP
server; real snakemake runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import fashion
import numpy as np
from coreml_bench.mlpackage.program import read_package_weights
from fashion import torch_study
from helpers import run_snakemake, serve_directory, write_config

DKM_YAML = b"global_config:\n  n_bits: 4\n  weight_threshold: 1024\n"


def _study(url: str, sha256: str | None) -> dict:
    source = {"url": url, **({"sha256": sha256} if sha256 else {})}
    experiment = {
        "id": "dkm",
        "trials": 1,
        # The file's 4 bits replace the 2 bits written here.
        "compression": {"algorithm": "palettize_dkm", "n_bits": 2, "config_yaml": source},
    }
    study = torch_study([{"id": "fp16", "compression": {"algorithm": "none"}}, experiment])
    # Random weights and two fine-tuning steps: what is under test is where the config comes
    # from, not what training reaches.
    study["models"][0]["source"] = {"kind": "random", "seed": 0}
    # (a new dict: trained_cnn() shares fashion.FINETUNE with every other test)
    study["models"][0]["finetune"] = {
        **study["models"][0]["finetune"],
        "epochs": 1,
        "max_steps_per_epoch": 2,
    }
    return study


def test_a_published_config_is_fetched_checked_and_used(tmp_path: Path) -> None:
    fashion.require_fashion_mnist()
    served = tmp_path / "served"
    served.mkdir()
    (served / "dkm.yaml").write_bytes(DKM_YAML)
    digest = hashlib.sha256(DKM_YAML).hexdigest()
    with serve_directory(served) as url:
        # A wrong digest: the download fails and leaves no copy behind.
        bad = tmp_path / "bad"
        write_config(bad, _study(f"{url}/dkm.yaml", "0" * 64))
        failed = run_snakemake(bad, "results/checks/torch_settings/dkm.json", check=False)
        assert failed.returncode != 0
        assert "sha256" in failed.stdout + failed.stderr
        assert not (bad / "results/configs/dkm/config.yaml").exists()

        work = tmp_path / "work"
        write_config(work, _study(f"{url}/dkm.yaml", digest))
        run_snakemake(work, "results/compressed/cnn/dkm/trial1/manifest.json")
    record = json.loads((work / "results/configs/dkm/download.json").read_text())
    assert record["sha256"] == digest and record["verified"] == "sha256"
    assert (work / "results/configs/dkm/config.yaml").read_bytes() == DKM_YAML
    check = json.loads((work / "results/checks/torch_settings/dkm.json").read_text())
    assert check["coremltools_config"] == "DKMPalettizerConfig"
    manifest = json.loads((work / "results/compressed/cnn/dkm/trial1/manifest.json").read_text())
    assert manifest["op_counts"].get("constexpr_lut_to_dense", 0) > 0
    # The file's n_bits (4), not the entry's (2): up to 16 distinct values per weight.
    weights = read_package_weights(work / "results/compressed/cnn/dkm/trial1/model.mlpackage")
    distinct = [
        len(np.unique(w.weight)) for w in weights if "constexpr_lut_to_dense" in w.weight_encoding
    ]
    assert distinct and max(distinct) <= 16 and max(distinct) > 4
