"""Stage compress: one Core ML-side algorithm applied to the fp16 package, package and
manifest out. Torch-side entries have their own stage (``torch_stage``, rule compress_torch);
both write the same kind of manifest (``compress.record``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..io import write_json_atomic
from ..mlpackage.files import open_package, save_atomic
from ..provenance import StageTimer
from ..schema_base import StrictModel
from .record import compression_record
from .registry import ALGORITHMS, Algorithm

log = logging.getLogger(__name__)


def compress_package(
    *,
    params: StrictModel,
    baseline_package: Path,
    baseline_manifest: dict[str, Any],
    package: Path,
    manifest: Path,
    context: dict[str, Any],
    inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Apply one Core ML-side algorithm to the fp16 package; record ratios and op counts.

    ``inputs``: what the entry declares it reads beyond the package (``Algorithm.inputs``).
    """
    entry = ALGORITHMS[params.algorithm]  # type: ignore[attr-defined]
    if entry.apply is None:
        raise ValueError(f"algorithm {params.algorithm!r} is not a Core ML-side algorithm")  # type: ignore[attr-defined]
    timer = StageTimer()
    with timer.section("load"):
        mlmodel = open_package(baseline_package, skip_model_load=True)
    log.info("applying %s %s", params.algorithm, params.label())  # type: ignore[attr-defined]
    with timer.section("compress"):
        given = dict(inputs or {})
        if set(given) != set(entry.inputs):
            raise ValueError(
                f"algorithm {params.algorithm!r} reads {sorted(entry.inputs)}, "  # type: ignore[attr-defined]
                f"the job gave {sorted(given)}"
            )
        compressed = entry.apply(mlmodel, params, **given)
    record = save_and_record(compressed, entry, params, package, baseline_manifest, context, timer)
    write_json_atomic(manifest, record)
    return record


def save_and_record(
    mlmodel: Any,
    entry: Algorithm,
    params: StrictModel,
    package: Path,
    baseline_manifest: dict[str, Any],
    context: dict[str, Any],
    timer: StageTimer,
) -> dict[str, Any]:
    """Save the compressed package atomically; its manifest record (not yet written)."""
    with timer.section("save"):
        save_atomic(mlmodel, package)
    return compression_record(
        entry=entry,
        params=params,
        package=package,
        baseline_manifest=baseline_manifest,
        context=context,
        timer=timer,
    )
