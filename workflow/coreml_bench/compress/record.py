"""The manifest of a compressed package: what was done, ratios against fp16, op counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..fingerprint import record_provenance
from ..mlpackage.files import package_summary
from ..mlpackage.program import read_package_weights
from ..provenance import StageTimer, package_versions
from ..schema_base import StrictModel
from .registry import Algorithm


def weight_encodings(package: Path) -> dict[str, int]:
    """How the weights of conv/linear ops are stored: dense const or a constexpr op type.

    Makes skipped tensors (under weight_threshold, indivisible channel counts, depthwise
    convs for int4 per-block and n:m) visible in the manifest.
    """
    counts: dict[str, int] = {}
    for weight in read_package_weights(package):
        counts[weight.weight_encoding] = counts.get(weight.weight_encoding, 0) + 1
    return counts


def compression_record(
    *,
    entry: Algorithm,
    params: StrictModel,
    package: Path,
    baseline_manifest: dict[str, Any],
    context: dict[str, Any],
    timer: StageTimer,
) -> dict[str, Any]:
    """The manifest of a compressed package: ratios against the fp16 baseline, op counts."""
    summary = package_summary(package)
    return {
        "stage": "compress",
        **context,
        "compression": params.model_dump(mode="json"),
        "algorithm_display": entry.display_name,
        "workflow": entry.workflow,
        "config_label": params.label(),  # type: ignore[attr-defined]
        "package": str(package),
        **summary,
        "weight_encodings": weight_encodings(package),
        "compression_ratio_weights": _ratio(
            baseline_manifest["weight_bytes"], summary["weight_bytes"]
        ),
        "compression_ratio_package": _ratio(
            baseline_manifest["package_bytes"], summary["package_bytes"]
        ),
        "timing": timer.summary(),
        "versions": package_versions(),
        "provenance": record_provenance("compress"),
    }


def _ratio(baseline: int, compressed: int) -> float | None:
    return round(baseline / compressed, 4) if compressed else None


def is_baseline_record(manifest: dict[str, Any]) -> bool:
    """The record of an fp16 baseline package (convert or import), not of a compression."""
    return manifest.get("stage") == "convert"
