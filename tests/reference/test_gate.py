"""The reference gate judges each published row both ways and never passes what it could not
measure; its report keeps each seed table's layout."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from coreml_bench.reference import DEFAULT_PUBLISHED, load_published
from coreml_bench.reference.gate import Reproduced, Tolerance, gate_passed, judge, run_gate
from coreml_bench.reference.report import render_csv, render_markdown
from coreml_bench.reference.stage import GateFailedError, check_gate

PUBLISHED = load_published(DEFAULT_PUBLISHED)


def _row(page: str, model: str, config: str, table: str | None = None):
    return next(
        r
        for r in PUBLISHED
        if r.page == page and r.model == model and r.config == config
        and (table is None or r.table == table)
    )  # fmt: skip


# MobileNetv2-1.0 4-bit DKM: published ratio 3.38, accuracy 70.60 ± 0.08 (ImageNet).
DKM4 = _row("accuracy-and-performance", "MobileNetv2-1.0", "4 bit")


def _reproduced(
    ratio: float = 3.38, accuracies: tuple[float, ...] = (70.6,), **change
) -> Reproduced:
    values = {
        "model": "mobilenet_v2",
        "experiment": "dkm-4bit",
        "ratio": ratio,
        "accuracies": accuracies,
        "metric": "top-1 (%)",
        "dataset_kind": "imagenet_folder",
        "n_images": 50_000,
        "weights": "torchvision",
        "latency_ms": 1.5,
        "latency_backend": "host",
        "latency_device": "cpu",
    }
    return Reproduced(**{**values, **change})


@pytest.mark.parametrize(
    ("reproduced", "status", "ratio", "accuracy"),
    [
        (_reproduced(), "pass", "pass", "pass"),
        (_reproduced(ratio=3.38 * 1.029), "pass", "pass", "pass"),
        (_reproduced(ratio=3.38 * 0.96), "fail", "fail (worse)", "pass"),
        (_reproduced(ratio=3.38 * 1.04), "fail", "fail (better)", "pass"),
        (_reproduced(accuracies=(69.9, 70.0, 70.05)), "fail", "pass", "fail (worse)"),
        (_reproduced(accuracies=(71.2,)), "fail", "pass", "fail (better)"),
        (_reproduced(weights="random"), "unmeasured", "pass", "unmeasured"),
        (_reproduced(dataset_kind="foolbox_imagenet_sample", n_images=20), "unmeasured",
         "pass", "unmeasured"),
        (_reproduced(n_images=10_000), "unmeasured", "pass", "unmeasured"),
    ],
)  # fmt: skip
def test_a_row_passes_only_within_tolerance_on_both_sides(
    reproduced: Reproduced, status: str, ratio: str, accuracy: str
) -> None:
    verdict = judge(DKM4, reproduced, Tolerance())
    assert (verdict.status, verdict.ratio_status, verdict.accuracy_status) == (
        status,
        ratio,
        accuracy,
    )
    if status != "pass":
        assert verdict.reasons  # every row that does not pass says why


def test_tolerances_expected_failures_and_unexpected_passes() -> None:
    wide = Tolerance(ratio=0.05, accuracy_pp=1.0)
    assert judge(DKM4, _reproduced(ratio=3.38 * 0.96, accuracies=(69.7,)), wide).status == "pass"
    known = Tolerance(expected_failure="our schedule is shorter than Apple's")
    failing = judge(DKM4, _reproduced(accuracies=(69.0,)), known)
    assert failing.status == "expected failure"
    assert "our schedule is shorter" in "; ".join(failing.reasons)
    passing = judge(DKM4, _reproduced(), known)
    assert passing.status == "unexpected pass"
    # An expected failure excuses what was measured, never what was not.
    assert judge(DKM4, _reproduced(weights="random"), known).status == "unmeasured"
    ratio_only = judge(DKM4, _reproduced(ratio=4.0, weights="random"), known)
    assert (ratio_only.status, ratio_only.ratio_status) == ("unmeasured", "fail (better)")
    assert judge(DKM4, _reproduced(ratio=4.0), Tolerance()).status == "fail"


def test_undeclared_rows_of_a_declared_model_are_listed_and_fail_the_gate() -> None:
    declared = {DKM4.key(): ("mobilenet_v2", "dkm-4bit")}
    verdicts = run_gate(
        PUBLISHED,
        {("mobilenet_v2", "dkm-4bit"): _reproduced()},
        declared,
        {},
        Tolerance(),
        {"MobileNetv2-1.0"},
    )
    mobilenet_rows = [r for r in PUBLISHED if r.model == "MobileNetv2-1.0"]
    assert len(verdicts) == len(mobilenet_rows)  # only the declared model's rows
    statuses = {v.published.key(): v.status for v in verdicts}
    assert statuses[DKM4.key()] == "pass"
    assert statuses[("MobileNetv2-1.0", "Float16", "n/a")] == "not declared"
    assert not gate_passed(verdicts)
    assert gate_passed([v for v in verdicts if v.status == "pass"])
    assert not gate_passed([])


def test_each_seed_table_keeps_its_own_columns(tmp_path: Path) -> None:
    models = {"MobileNetv2-1.0", "ResNet50"}
    verdicts = run_gate(PUBLISHED, {}, {}, {}, Tolerance(), models)
    report = render_markdown(verdicts, "study", "published.csv", ["x / y: no reference"])
    sections = {block.split("\n", 1)[0]: block for block in report.split("\n## ")[1:]}
    quantization = sections["quantization-performance: Results"]
    assert "iPhone 14 Pro, published" in quantization and "iPhone 15 Pro" in quantization
    algorithms = sections["palettization-algorithms: Results"]
    assert "Optimization Algorithm" in algorithms and "Latency" not in algorithms
    assert "Differentiable K-Means" in algorithms
    performance = sections["palettization-performance: Results"]
    assert "Accuracy" not in performance.split("\n")[2]  # the header row
    assert "FAILED" in report and "x / y: no reference" in report
    table = tmp_path / "gate.csv"
    table.write_text(render_csv(verdicts))
    with pytest.raises(
        GateFailedError, match=r"did not pass .*\n.*MobileNetv2-1.0 / Float16: not declared"
    ):
        check_gate(table, tmp_path / "passed.json")
    assert not (tmp_path / "passed.json").exists()


def test_a_passing_report_writes_the_marker(tmp_path: Path) -> None:
    verdicts = [judge(DKM4, _reproduced(), Tolerance())]
    table = tmp_path / "gate.csv"
    table.write_text(render_csv(verdicts))
    with open(table, newline="") as handle:
        record = next(csv.DictReader(handle))
    assert record["status"] == "pass"
    assert record["reproduced_latency_by"] == "host on cpu"
    check_gate(table, tmp_path / "passed.json")
    assert (tmp_path / "passed.json").is_file()
