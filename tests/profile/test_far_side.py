"""The far side of remote profiling: `python -m coreml_bench.profile request.json` runs with
only the standard library and numpy (plus torch/coremltools for the measuring itself)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from coreml_bench.profile import LatencyRun
from coreml_bench.profile.remote import RESULT_MARKER
from helpers import ROOT

# Import the far-side entry point with pydantic and PyYAML made unimportable.
NO_PYDANTIC = """
import sys
sys.modules["pydantic"] = None
sys.modules["yaml"] = None
sys.path.insert(0, sys.argv[1])
import coreml_bench.profile.__main__
print(sorted(name for name in sys.modules if name.startswith("coreml_bench")))
"""


def test_far_side_imports_without_pydantic() -> None:
    result = subprocess.run(
        [sys.executable, "-c", NO_PYDANTIC, str(ROOT / "workflow")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "coreml_bench.profile.host" in result.stdout
    assert "coreml_bench.config" not in result.stdout


def test_far_side_measures_a_package_and_prints_one_result_line(
    fashion_package: Path, tmp_path: Path
) -> None:
    import shutil

    shutil.copytree(fashion_package, tmp_path / "model.mlpackage")
    run = LatencyRun(runs=3, warmup=1)
    request = {"package": "model.mlpackage", "backend": "host", "run": run.to_json()}
    (tmp_path / "request.json").write_text(json.dumps(request))
    result = subprocess.run(
        [sys.executable, "-m", "coreml_bench.profile", "request.json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT / "workflow"), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    assert len(lines) == 1
    figures = json.loads(lines[0][len(RESULT_MARKER) :])
    assert figures["backend"] == "host"
    assert figures["latency_median_ms"] > 0
    assert figures["compute_units"] == "CPU (1 thread)"
