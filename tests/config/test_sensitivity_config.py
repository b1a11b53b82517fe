"""config/sensitivity.yaml plans what it promises: every setting measured per layer once,
the searches drawing on those measurements, and the searched rows compressed like others."""

from __future__ import annotations

from pathlib import Path

import yaml
from helpers import ROOT, dry_run_jobs


def test_sensitivity_study_plans_measurements_searches_and_rows(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "config/sensitivity.yaml").read_text())
    jobs = dry_run_jobs(tmp_path, config)
    searches = [e for e in config["experiments"] if e["compression"]["algorithm"] ==
                "mixed_precision"]  # fmt: skip
    candidates = {c for e in searches for c in e["compression"]["candidates"]}
    measured = candidates | set(config["sensitivity"]["experiments"])
    assert jobs["sensitivity"] == len(measured)
    assert jobs["sensitivity_reference"] == 1  # one fp16 reference serves every setting
    assert jobs["search_mixed_precision"] == len(searches)
    assert jobs["sensitivity_tables"] == 1
    assert jobs["compress"] == len(config["experiments"]) - 1  # every row but fp16
    assert jobs["evaluate"] == len(config["experiments"])
