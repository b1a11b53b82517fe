"""Stage sensitivity_tables: the per-layer table (CSV + markdown) and one bar chart per model
and setting (sensitivity of each tensor beside the bytes it holds), from the records."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import read_json, save_with, write_text_atomic

log = logging.getLogger(__name__)

TOP_TENSORS = 10  # rows per setting in the markdown summary


def layer_records(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per (model, setting, tensor), in program order."""
    rows = []
    for record in records:
        for index, layer in enumerate(record["layers"]):
            rows.append(
                {
                    "model": record["model"],
                    "experiment": record["experiment"],
                    "setting": record["setting"]["label"],
                    "index": index,
                    **{k: v for k, v in layer.items() if k != "shape"},
                    "shape": "x".join(str(d) for d in layer["shape"]),
                    "backend": record["backend"],
                    "n_samples": record["calibration"]["n_samples"],
                }
            )
    return rows


def _markdown(records: Sequence[dict[str, Any]]) -> str:
    import pandas as pd

    parts = [
        "# Per-layer sensitivity\n",
        "Each row: the fp16 program with only that weight tensor compressed by the setting, "
        "run by the executor (mil-torch) on the calibration split. KL: mean KL divergence "
        "of the softmax from the fp16 program's, in nats; Top-1 drop: points lost against the "
        "labels; MB: bytes the tensor holds dense (fp16) → compressed; #: the tensor's place "
        "in program order (the bar charts' x axis). The ten most sensitive tensors per setting "
        "are listed; results/tables/sensitivity.csv has all.\n",
    ]
    for record in records:
        layers = pd.DataFrame(record["layers"])
        layers.insert(0, "index", range(len(layers)))
        whole = record["whole_model"]
        calibration = record["calibration"]
        parts.append(
            f"\n## {record['model']} · {record['setting']['label']} ({record['experiment']})\n\n"
            f"{len(layers)} tensors compressed by the setting; calibration: "
            f"{calibration['n_samples']} samples ({calibration['views_per_image']} views per "
            f"image). fp16 top-1 on them: {record['reference_top1']:.1f} %. Every tensor "
            f"compressed at once: KL {whole['kl']:.4g}, top-1 {whole['top1']:.1f} %; sum of "
            f"the per-tensor KLs: {layers['kl'].sum() if len(layers) else 0.0:.4g}.\n\n"
        )
        if layers.empty:
            continue
        top = layers.sort_values("kl", ascending=False).head(TOP_TENSORS)
        table = pd.DataFrame(
            {
                "#": top["index"],
                "Tensor (op)": top["op_name"],
                "Type": top["op_type"],
                "Parameters": top["parameters"],
                "MB fp16 → compressed": [
                    f"{d / 1e6:.3f} → {c / 1e6:.3f}"
                    for d, c in zip(top["dense_bytes"], top["compressed_bytes"], strict=True)
                ],
                "KL": [f"{v:.4g}" for v in top["kl"]],
                "Top-1 drop": [f"{v:.1f}" for v in top["top1_drop"]],
                "Agreement (%)": [f"{v:.1f}" for v in top["agreement"]],
            }
        )
        parts.append(table.to_markdown(index=False) + "\n")
    return "".join(parts)


def bar_chart(record: dict[str, Any], path: Path) -> None:
    """KL per tensor in program order (log scale), the tensor's fp16 MB on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = record["layers"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * len(layers) + 2), 4.5))
    positions = range(len(layers))
    floor = 1e-7  # zero KL (an unchanged output) drawn at the axis floor of the log scale
    ax.bar(positions, [max(layer["kl"], floor) for layer in layers], color="tab:red", alpha=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("KL from fp16 (nats, log)", color="tab:red")
    ax.set_xlabel("weight tensor (program order)")
    size = ax.twinx()
    size.plot(positions, [layer["dense_bytes"] / 1e6 for layer in layers], "k.-", lw=0.8)
    size.set_ylabel("MB the tensor holds at fp16")
    ax.set_xticks(list(positions))
    ax.set_xticklabels([str(i) for i in positions], fontsize=6)
    ax.set_title(
        f"{record['model']}: {record['setting']['label']}, one tensor at a time "
        f"({record['calibration']['n_samples']} calibration samples, mil-torch)",
        fontsize=9,
    )
    fig.tight_layout()
    save_with(lambda tmp: fig.savefig(tmp, dpi=110, format="png"), path, suffix=".png")
    plt.close(fig)


def sensitivity_tables(
    *, records: Sequence[Path], table_csv: Path, table_md: Path, plots: Sequence[Path]
) -> None:
    """The table of every record, and ``plots[i]``: the bar chart of ``records[i]``."""
    import pandas as pd

    loaded = [read_json(path) for path in records]
    write_text_atomic(table_csv, pd.DataFrame(layer_records(loaded)).to_csv(index=False))
    write_text_atomic(table_md, _markdown(loaded))
    for record, plot in zip(loaded, plots, strict=True):
        bar_chart(record, plot)
    log.info("wrote %s, %s and %d bar charts", table_csv, table_md, len(plots))
