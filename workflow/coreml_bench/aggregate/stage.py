"""Stage aggregate: the seed tables' layout (markdown + CSV) and a Pareto plot, from the
records on disk only."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import write_text_atomic
from .plot import frontier_plot, pareto_plot
from .tables import TableRow, collect, summary_table

log = logging.getLogger(__name__)


def aggregate(
    *,
    manifests: Sequence[Path],
    evaluations: Sequence[Path],
    profiles: Sequence[Path],
    rows: Sequence[TableRow],
    table_csv: Path,
    table_md: Path,
    plot: Path,
    frontier: Path | None = None,
) -> Any:
    records = collect(rows, manifests, evaluations, profiles)
    table = summary_table(records)
    backends = sorted({r["latency_backend"] + " (" + r["latency_device"] + ")" for r in records})
    mixed = (
        f" The Latency column MIXES {len(backends)} devices; compare rows only within one "
        "'Latency Backend'."
        if len(backends) > 1
        else ""
    )
    note = (
        "\n\nAccuracy: the 'Metric' (top-1 % or COCO mAP %) of the compressed Core ML "
        "artifact, measured by the backend "
        "named in 'Accuracy Backend'. Latency: median of batch-1 predictions measured by "
        f"{'; '.join(backends)}: host latency is not device latency.{mixed}\n"
    )
    write_text_atomic(table_csv, table.to_csv(index=False))
    write_text_atomic(table_md, table.to_markdown(index=False) + note)
    pareto_plot(records, plot)
    if frontier is not None:
        frontier_plot(records, frontier)
    log.info("wrote %s, %s and %s (%d rows)", table_csv, table_md, plot, len(table))
    return table
