"""The gate's report: every seed table in its own layout, reproduced beside published.

A table shows the columns its page shows (an "Optimization Algorithm" or "Optimization
Workflow" column, accuracy where the page has it, one latency column per device the page
measured on), each figure as ``published → reproduced (difference)``, and the verdict.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from .gate import GateRow, gate_passed, latency_source

DEVICES = (
    ("latency_iphone_14_pro_ms", "iPhone 14 Pro"),
    ("latency_iphone_15_pro_ms", "iPhone 15 Pro"),
)


def _number(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _ratio_cell(v: GateRow) -> str:
    published = f"{v.published.compression_ratio:g}"
    if v.reproduced is None:
        return f"{published} → –"
    return f"{published} → {v.reproduced.ratio:.2f} ({v.ratio_diff_percent:+.1f} %)"


def _accuracy_cell(v: GateRow) -> str:
    row = v.published
    published = _number(row.accuracy_mean)
    if row.accuracy_std is not None:
        published += f" ± {row.accuracy_std:.2f}"
    if v.reproduced is None:
        return f"{published} → –"
    if v.accuracy_diff_pp is None:
        return f"{published} → {v.reproduced.accuracy_text()} (not comparable)"
    return f"{published} → {v.reproduced.accuracy_text()} ({v.accuracy_diff_pp:+.2f} pp)"


def _gate_cell(v: GateRow) -> str:
    """The row's status, and the ratio's verdict where the row is not judged on it alone."""
    if v.reproduced is None or v.status == "pass":
        return v.status
    return f"{v.status} (ratio: {v.ratio_status}{', expected' if v.excused else ''})"


def _table(verdicts: Sequence[GateRow]) -> list[str]:
    rows = [v.published for v in verdicts]
    algorithm = any(r.algorithm for r in rows)
    accuracy = any(r.accuracy_mean is not None for r in rows)
    devices = [(f, name) for f, name in DEVICES if any(getattr(r, f) is not None for r in rows)]
    header = [
        "Model Name",
        "Config",
        "Optimization Algorithm" if algorithm else "Optimization Workflow",
    ]
    header += ["Compression Ratio: published → reproduced"]
    if accuracy:
        header += ["Accuracy: published → reproduced"]
    header += [f"Latency (ms) on {name}, published" for _, name in devices]
    if devices:
        header += ["Latency (ms) reproduced, by"]
    header += ["Gate"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for v in verdicts:
        row = v.published
        cells = [row.model, row.config, (row.algorithm or "n/a") if algorithm else row.workflow]
        cells += [_ratio_cell(v)]
        if accuracy:
            cells += [_accuracy_cell(v)]
        cells += [_number(getattr(row, f)) for f, _ in devices]
        if devices:
            mine = v.reproduced
            cells += [f"{mine.latency_ms:.3f} ({latency_source(mine)})" if mine else "–"]
        cells += [_gate_cell(v)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def render_markdown(
    verdicts: Sequence[GateRow], study: str, published: str, unmatched: Sequence[str]
) -> str:
    """The whole report: verdict counts, each seed table, every reason, rows with no reference."""
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.status] = counts.get(v.status, 0) + 1
    verdict = "PASSED" if gate_passed(verdicts) else "FAILED"
    ratios: dict[str, int] = {}
    for v in verdicts:
        if v.ratio_status:
            ratio = v.ratio_status + (" (expected)" if v.excused else "")
            ratios[ratio] = ratios.get(ratio, 0) + 1
    lines = [
        f"# Reference gate: study `{study}` — {verdict}",
        "",
        f"Published figures: `{published}` (transcribed from the coremltools optimization "
        "guide). Each figure reads *published → reproduced (difference)*. A row passes when "
        "its compression ratio and accuracy both lie within tolerance, on either side; "
        "unmeasured and undeclared rows never pass. Latencies: Apple's iPhone figures beside "
        "this run's, with the backend and device that measured them (not gated).",
        "",
        "| Status | Rows |",
        "|---|---|",
        *[f"| {status} | {count} |" for status, count in sorted(counts.items())],
        "",
        "Compression ratios alone (rows with a reproduced figure): "
        + ", ".join(f"{count} {status}" for status, count in sorted(ratios.items()))
        + ".",
        "",
    ]
    tables: dict[tuple[str, str], list[GateRow]] = {}
    for v in verdicts:
        tables.setdefault((v.published.page, v.published.table), []).append(v)
    for (page, table), rows in tables.items():
        lines += [f"## {page}: {table}", "", *_table(rows), ""]
    reasons = [v for v in verdicts if v.status not in ("pass", "not declared")]
    if reasons:
        lines += ["## Why rows did not pass", ""]
        for v in reasons:
            row = v.published
            lines.append(
                f"- {row.page} / {row.table} / {row.model} / {row.config}: **{v.status}** — "
                + "; ".join(v.reasons)
            )
        lines.append("")
    stand_ins = [v for v in verdicts if v.status == "pass" and v.reasons]
    if stand_ins:
        lines += ["## Rows judged on a stand-in experiment", ""]
        for v in stand_ins:
            row = v.published
            lines.append(f"- {row.page} / {row.table} / {row.model} / {row.config}: {v.reasons[0]}")
        lines.append("")
    if unmatched:
        lines += ["## Configured rows without a published figure", ""]
        lines += [f"- {item}" for item in unmatched]
        lines.append("")
    return "\n".join(lines)


def render_csv(verdicts: Sequence[GateRow]) -> str:
    records = [v.as_record() for v in verdicts]
    buffer = io.StringIO()
    if records:
        writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return buffer.getvalue()
