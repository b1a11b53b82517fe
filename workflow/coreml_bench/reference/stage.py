"""Stages reference_report and check: the gate's report from the records on disk, then the
verdict (a separate rule, so a failing gate keeps its report)."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..aggregate.tables import TableRow, collect
from ..io import write_json_atomic, write_text_atomic
from .gate import GateRow, Tolerance, fold_trials, gate_passed, run_gate
from .published import DEFAULT_PUBLISHED, load_published
from .report import render_csv, render_markdown

log = logging.getLogger(__name__)


class GateFailedError(RuntimeError):
    """At least one published row was not reproduced within tolerance (or not measured)."""


def compare_with_published(
    *,
    rows: Sequence[TableRow],
    manifests: Sequence[Path],
    evaluations: Sequence[Path],
    profiles: Sequence[Path],
    reference: dict[str, Any],
    study: str,
    table_csv: Path,
    table_md: Path,
) -> list[GateRow]:
    """Judge every published row of the study's models; write the CSV and markdown report."""
    published = load_published(Path(reference["published"]))
    reproduced = fold_trials(collect(rows, manifests, evaluations, profiles), reference["weights"])
    declared = {
        (d["model"], d["config"], d["workflow"]): (d["model_id"], d["experiment_id"])
        for d in reference["declared"]
    }
    stand_ins = {
        (d["model_id"], d["experiment_id"]): d["stands_for"]
        for d in reference["declared"]
        if d["stands_for"]
    }
    default = Tolerance(reference["default"]["ratio"], reference["default"]["accuracy_pp"])
    # Several settings rows may name one configured row: each sets what it sets.
    settings: dict[tuple[str, str], dict[str, Any]] = {}
    for r in reference["rows"]:
        merged = settings.setdefault((r["model"], r["experiment"]), {})
        merged.update({k: v for k, v in r.items() if v is not None})
    tolerances = {
        ids: Tolerance(
            s.get("ratio_tolerance", default.ratio),
            s.get("accuracy_tolerance_pp", default.accuracy_pp),
            s.get("expected_failure"),
        )
        for ids, s in settings.items()
    }
    verdicts = run_gate(
        published, reproduced, declared, tolerances, default, set(reference["models"]), stand_ins
    )
    known = {row.key() for row in published}
    unmatched = [
        f"{d['model_id']} / {d['experiment_id']}: {d['model']}, {d['config']}, {d['workflow']}"
        for d in reference["declared"]
        if (d["model"], d["config"], d["workflow"]) not in known
    ]
    write_text_atomic(table_csv, render_csv(verdicts))
    source = Path(reference["published"])
    shown = (
        "coreml_bench/reference/published.csv (shipped with the workflow)"
        if source.resolve() == DEFAULT_PUBLISHED.resolve()
        else str(source)
    )
    write_text_atomic(table_md, render_markdown(verdicts, study, shown, unmatched))
    log.info(
        "reference gate %s: %d published rows judged",
        "passed" if gate_passed(verdicts) else "FAILED",
        len(verdicts),
    )
    return verdicts


def check_gate(report_csv: Path, passed: Path) -> None:
    """The gate's verdict: raise naming every row that did not pass; else write ``passed``."""
    with open(report_csv, newline="") as handle:
        records = list(csv.DictReader(handle))
    failing = [r for r in records if r["status"] not in ("pass", "expected failure")]
    if not records or failing:
        lines = [
            f"  {r['page']} / {r['table']} / {r['model']} / {r['config']}: {r['status']}"
            + (f" ({r['reason']})" if r["reason"] else "")
            for r in failing
        ]
        raise GateFailedError(
            f"reference gate failed: {len(failing)} of {len(records)} published rows did not "
            f"pass (report: {report_csv}):\n" + "\n".join(lines)
        )
    write_json_atomic(passed, {"stage": "check", "rows": len(records), "passed": True})
