"""The reference gate: each published row against what this run reproduced, failing both ways.

Per published row (in the tables of the models a config declares): the compression ratio must
lie within ±``ratio_tolerance`` (relative) of the published one and the accuracy within
±``accuracy_tolerance_pp`` percentage points. Outside on either side fails - a better-than-
published figure means the reference (or the measurement) must be looked at, as NNCF's
conformance suite treats it. A row may carry a documented expected-failure reason; if such a
row then passes it is flagged too. A figure that could not be measured (not declared, random
weights, an evaluation set other than the published one) is reported with the reason and
never passes. Latency is shown beside the published one with the backend and device that
produced it; Apple measured on iPhones, so it is not gated.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .published import PublishedRow

Status = Literal[
    "pass", "fail", "expected failure", "unexpected pass", "unmeasured", "not declared"
]
# Rows with these statuses keep the gate green; anything else fails it.
PASSING: tuple[Status, ...] = ("pass", "expected failure")

# The published accuracy is on the full validation set of its data set: these kinds and image
# counts (ILSVRC2012 val: 50,000 images; COCO val2017: 5,000) are what makes a figure
# comparable.
FULL_EVALUATION: dict[str, tuple[tuple[str, ...], int]] = {
    "ImageNet": (("imagenet_folder", "imagenet_flat"), 50_000),
    "MS-COCO": (("coco",), 5_000),
}


@dataclass(frozen=True)
class Tolerance:
    """How far a reproduced figure may lie from the published one, and a known failure."""

    ratio: float = 0.03
    accuracy_pp: float = 0.5
    expected_failure: str | None = None


@dataclass(frozen=True)
class Reproduced:
    """One configured row (model × experiment) as measured: trials folded."""

    model: str
    experiment: str
    ratio: float
    accuracies: tuple[float, ...]
    metric: str
    dataset_kind: str
    n_images: int
    weights: str
    latency_ms: float
    latency_backend: str
    latency_device: str

    @property
    def accuracy(self) -> float:
        return statistics.fmean(self.accuracies)

    def accuracy_text(self) -> str:
        if len(self.accuracies) == 1:
            return f"{self.accuracies[0]:.2f}"
        return f"{self.accuracy:.2f} ± {statistics.stdev(self.accuracies):.2f}"


@dataclass
class GateRow:
    """The verdict on one published row."""

    published: PublishedRow
    reproduced: Reproduced | None
    status: Status
    ratio_status: str = ""
    accuracy_status: str = ""
    ratio_diff_percent: float | None = None
    accuracy_diff_pp: float | None = None
    reasons: list[str] = field(default_factory=list)
    # A failure that matches the row's documented expected-failure reason.
    excused: bool = False

    def as_record(self) -> dict[str, Any]:
        """One flat CSV record: published and reproduced figures, differences, verdict."""
        row, mine = self.published, self.reproduced
        return {
            "page": row.page,
            "table": row.table,
            "model": row.model,
            "config": row.config,
            "workflow": row.workflow,
            "model_id": mine.model if mine else "",
            "experiment_id": mine.experiment if mine else "",
            "published_ratio": row.compression_ratio,
            "reproduced_ratio": round(mine.ratio, 4) if mine else None,
            "ratio_diff_percent": _round(self.ratio_diff_percent),
            "ratio_status": self.ratio_status,
            "published_accuracy": row.accuracy_mean,
            "published_accuracy_std": row.accuracy_std,
            "reproduced_accuracy": round(mine.accuracy, 4) if mine else None,
            "reproduced_accuracy_text": mine.accuracy_text() if mine else "",
            "trials": len(mine.accuracies) if mine else None,
            "accuracy_diff_pp": _round(self.accuracy_diff_pp),
            "accuracy_status": self.accuracy_status,
            "evaluated_on": f"{mine.dataset_kind} ({mine.n_images} images)" if mine else "",
            "published_latency_iphone_14_pro_ms": row.latency_iphone_14_pro_ms,
            "published_latency_iphone_15_pro_ms": row.latency_iphone_15_pro_ms,
            "reproduced_latency_ms": round(mine.latency_ms, 4) if mine else None,
            "reproduced_latency_by": latency_source(mine) if mine else "",
            "status": self.status,
            "expected_failure": self.excused,
            "reason": "; ".join(self.reasons),
        }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def latency_source(reproduced: Reproduced) -> str:
    return f"{reproduced.latency_backend} on {reproduced.latency_device}"


def fold_trials(
    records: Sequence[Mapping[str, Any]], weights: Mapping[str, str]
) -> dict[tuple[str, str], Reproduced]:
    """Aggregate's per-trial records → one ``Reproduced`` per (model id, experiment id)."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["model"], record["experiment"]), []).append(record)
    folded = {}
    for (model, experiment), trials in groups.items():
        first = trials[0]
        folded[(model, experiment)] = Reproduced(
            model=model,
            experiment=experiment,
            ratio=statistics.fmean(float(t["ratio_package"]) for t in trials),
            accuracies=tuple(float(t["accuracy"]) for t in trials),
            metric=str(first["metric"]),
            dataset_kind=str(first.get("dataset_kind") or "unknown"),
            n_images=int(first["n_images"]),
            weights=weights.get(model, "unknown"),
            latency_ms=statistics.fmean(float(t["latency_ms"]) for t in trials),
            latency_backend=str(first["latency_backend"]),
            latency_device=str(first["latency_device"]),
        )
    return folded


def _accuracy_unmeasurable(row: PublishedRow, mine: Reproduced) -> str | None:
    """Why this run's accuracy cannot stand for the published one (None: it can)."""
    if mine.weights == "random":
        return "accuracy not measured: the model has seeded random weights (source kind random)"
    kinds, images = FULL_EVALUATION.get(row.dataset, ((), 0))
    if mine.dataset_kind not in kinds or mine.n_images != images:
        return (
            f"accuracy not measured: evaluated on {mine.dataset_kind} ({mine.n_images} images), "
            f"the published figure is on the full {row.dataset} validation set "
            f"({images} images)"
        )
    return None


def _side(diff: float, tolerance: float) -> str:
    if abs(diff) <= tolerance:
        return "pass"
    return "fail (better)" if diff > 0 else "fail (worse)"


def judge(row: PublishedRow, mine: Reproduced | None, tolerance: Tolerance) -> GateRow:
    """The verdict on one published row (see the module docstring)."""
    if mine is None:
        return GateRow(
            row,
            None,
            "not declared",
            reasons=["no experiment of this config reproduces this row"],
        )
    verdict = GateRow(row, mine, "pass")
    verdict.ratio_diff_percent = (
        100.0 * (mine.ratio - row.compression_ratio) / row.compression_ratio
    )
    verdict.ratio_status = _side(verdict.ratio_diff_percent / 100.0, tolerance.ratio)
    if verdict.ratio_status != "pass":
        verdict.reasons.append(
            f"compression ratio {mine.ratio:.3f} vs published {row.compression_ratio} "
            f"({verdict.ratio_diff_percent:+.1f} %, tolerance ±{100 * tolerance.ratio:g} %)"
        )
    unmeasured = None
    if row.accuracy_mean is not None:
        unmeasured = _accuracy_unmeasurable(row, mine)
        if unmeasured is not None:
            verdict.accuracy_status = "unmeasured"
            verdict.reasons.append(unmeasured)
        else:
            verdict.accuracy_diff_pp = mine.accuracy - row.accuracy_mean
            verdict.accuracy_status = _side(verdict.accuracy_diff_pp, tolerance.accuracy_pp)
            if verdict.accuracy_status != "pass":
                verdict.reasons.append(
                    f"accuracy {mine.accuracy:.2f} vs published {row.accuracy_mean} "
                    f"({verdict.accuracy_diff_pp:+.2f} pp, tolerance ±{tolerance.accuracy_pp:g} pp)"
                )
    failed = "fail" in verdict.ratio_status or "fail" in verdict.accuracy_status
    expected = tolerance.expected_failure
    if failed and expected is None:
        verdict.status = "fail"
    elif failed:
        verdict.excused = True
        verdict.reasons.append(f"expected: {expected}")
        # An expected failure excuses what was measured, never what was not.
        verdict.status = "unmeasured" if unmeasured is not None else "expected failure"
    elif unmeasured is not None:
        verdict.status = "unmeasured"
    elif expected is not None:
        verdict.status = "unexpected pass"
        verdict.reasons.append(
            f"marked as an expected failure ({expected}) but it passes: remove the mark or "
            "look at the reference"
        )
    return verdict


def run_gate(
    published: Sequence[PublishedRow],
    reproduced: Mapping[tuple[str, str], Reproduced],
    declared: Mapping[tuple[str, str, str], tuple[str, str]],
    tolerances: Mapping[tuple[str, str], Tolerance],
    default: Tolerance,
    models: set[str],
    stand_ins: Mapping[tuple[str, str], str] | None = None,
) -> list[GateRow]:
    """Judge every published row of the published model names in ``models``.

    ``declared`` maps a published key (model name, config, workflow) to the (model id,
    experiment id) this config reproduces it with; ``tolerances`` overrides ``default`` per
    (model id, experiment id); ``stand_ins`` says, per (model id, experiment id), why an
    experiment with other labels is judged against a row (the report shows it).
    """
    verdicts = []
    for row in published:
        if row.model not in models:
            continue
        ids = declared.get(row.key())
        tolerance = tolerances.get(ids, default) if ids else default
        verdict = judge(row, reproduced.get(ids) if ids else None, tolerance)
        why = (stand_ins or {}).get(ids) if ids else None
        if why:
            verdict.reasons.insert(0, f"judged on experiment {ids[1]!r}: {why}")
        verdicts.append(verdict)
    return verdicts


def gate_passed(verdicts: Sequence[GateRow]) -> bool:
    return bool(verdicts) and all(v.status in PASSING for v in verdicts)
