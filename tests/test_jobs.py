"""The one job adapter: every rule of the workflow has its stage, and nothing else does."""

from __future__ import annotations

import re

from coreml_bench.jobs import STAGES
from helpers import ROOT


def test_every_rule_has_a_stage_and_every_stage_a_rule() -> None:
    rules = set()
    for path in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        rules |= set(re.findall(r"^rule (\w+):", path.read_text(), flags=re.MULTILINE))
    assert rules - {"all"} == set(STAGES)
    # ... and every rule runs the one adapter script.
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        lines = [line.strip() for line in path.read_text().splitlines()]
        scripts = [lines[i + 1] for i, line in enumerate(lines) if line == "script:"]
        assert set(scripts) <= {"STAGE_SCRIPT"}, path
