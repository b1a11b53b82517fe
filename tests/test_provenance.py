"""What every record says about how it was made."""

from __future__ import annotations

import time

from coreml_bench.provenance import StageTimer, git_commit, host_info, package_versions


def test_stage_timer_records_sections_wall_time_and_memory() -> None:
    timer = StageTimer()
    with timer.section("work"):
        time.sleep(0.01)
    summary = timer.summary()
    assert summary["sections_seconds"]["work"] >= 0.01
    assert summary["wall_seconds"] >= summary["sections_seconds"]["work"]
    assert summary["peak_rss_mb"] > 10


def test_versions_host_and_commit_are_recorded() -> None:
    versions = package_versions()
    assert versions["torch"] == "2.14.1+cu130" or versions["torch"].startswith("2.14.1")
    assert set(host_info()) == {"hostname", "system", "release", "machine", "processor"}
    commit = git_commit()
    assert commit == "unknown" or len(commit) == 40
