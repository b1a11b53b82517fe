"""The Pareto plot: accuracy vs compression ratio, a marker per algorithm (from its registry
entry), a colour per model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..compress import ALGORITHMS
from ..io import save_with


def pareto_plot(records: list[dict[str, Any]], path: Path) -> None:
    """Accuracy vs compression ratio: one marker per algorithm, one colour per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame(records)
    grouped = (
        frame.groupby(["model", "experiment"], sort=False)
        .agg(
            model_name=("model_name", "first"),
            label=("config_label", "first"),
            algorithm=("algorithm", "first"),
            algorithm_display=("algorithm_display", "first"),
            workflow=("workflow", "first"),
            ratio=("ratio_package", "mean"),
            accuracy=("accuracy", "mean"),
            accuracy_std=("accuracy", "std"),
            backend=("accuracy_backend", "first"),
        )
        .reset_index()
    )
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (_model, group) in enumerate(grouped.groupby("model", sort=False)):
        colour = colours[index % len(colours)]
        ordered = group.sort_values("ratio")
        frontier, best = [], -1.0
        for _, point in ordered.iloc[::-1].iterrows():  # highest ratio first
            if point["accuracy"] > best:
                frontier.append(point)
                best = point["accuracy"]
        if len(frontier) > 1:
            front = pd.DataFrame(frontier).sort_values("ratio")
            ax.plot(front["ratio"], front["accuracy"], color=colour, alpha=0.4, lw=1)
        for _, point in group.iterrows():
            ax.errorbar(
                point["ratio"],
                point["accuracy"],
                yerr=0 if pd.isna(point["accuracy_std"]) else point["accuracy_std"],
                marker=ALGORITHMS[point["algorithm"]].marker,
                color=colour,
                ms=8,
                ls="none",
            )
            ax.annotate(
                point["label"],
                (point["ratio"], point["accuracy"]),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
        ax.plot([], [], color=colour, lw=3, label=group["model_name"].iloc[0])
    shown = set(grouped["algorithm"])
    for algorithm in (name for name in ALGORITHMS if name in shown):
        entry = ALGORITHMS[algorithm]
        ax.plot([], [], marker=entry.marker, color="grey", ls="none", label=entry.legend_label())
    backends = ", ".join(sorted(grouped["backend"].unique()))
    n_images = int(frame["n_images"].iloc[0])
    ax.set_xlabel("compression ratio vs fp16 package (higher is smaller)")
    metrics = " / ".join(frame["metric"].unique())
    ax.set_ylabel(f"{metrics} on {n_images} images")
    ax.set_title(f"Accuracy vs compression (accuracy backend: {backends})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    save_with(lambda tmp: fig.savefig(tmp, dpi=120, format="png"), path, suffix=".png")
    plt.close(fig)


def frontier_plot(records: list[dict[str, Any]], path: Path) -> None:
    """Accuracy vs package size (MB, log): every row, one panel per model; the searched
    mixed-precision rows drawn large, beside the uniform rows of the same sizes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame(records)
    grouped = (
        frame.groupby(["model", "experiment"], sort=False)
        .agg(
            model_name=("model_name", "first"),
            label=("config_label", "first"),
            algorithm=("algorithm", "first"),
            size=("package_mb", "mean"),
            accuracy=("accuracy", "mean"),
            backend=("accuracy_backend", "first"),
        )
        .reset_index()
    )
    models = list(dict.fromkeys(grouped["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(7 * len(models), 5), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        group = grouped[grouped["model"] == model]
        for _, point in group.iterrows():
            searched = point["algorithm"] == "mixed_precision"
            ax.plot(
                point["size"],
                point["accuracy"],
                marker=ALGORITHMS[point["algorithm"]].marker,
                color="tab:red" if searched else "tab:blue",
                ms=12 if searched else 7,
                ls="none",
            )
            ax.annotate(
                point["label"],
                (point["size"], point["accuracy"]),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
        ax.set_xscale("log")
        ax.set_xlabel("package size (MB, log)")
        ax.set_ylabel(" / ".join(frame["metric"].unique()))
        ax.set_title(
            f"{group['model_name'].iloc[0]}: searched (red) vs uniform (blue) "
            f"[{', '.join(sorted(group['backend'].unique()))}]",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_with(lambda tmp: fig.savefig(tmp, dpi=120, format="png"), path, suffix=".png")
    plt.close(fig)
