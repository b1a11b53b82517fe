"""Budgeted mixed precision: a per-tensor choice among measured settings, written as
coremltools' own per-op config (``op_name_configs``) and applied by coremltools.

Rule sensitivity measures each candidate setting one tensor at a time; rule
search_mixed_precision (``select_mixed_precision``) picks one option per tensor within the
budget (``sensitivity.search``) and writes ``selection.yaml``: for each coremltools function,
the ``OptimizationConfig.from_dict`` dict naming the tensors it compresses. Rule compress
then applies it (``_apply_mixed_precision``) to the fp16 package like any other setting.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ..fingerprint import record_provenance
from ..io import write_json_atomic, write_text_atomic
from ..schema_base import Identifier, StrictModel
from ..sensitivity.search import Choice, Option, SearchMethod, search
from ..sensitivity.settings import Measure
from .registry import ALGORITHMS, Algorithm

log = logging.getLogger(__name__)

FP16 = "fp16"
# Order the passes run in: a tensor is named in one pass only, so the order only matters
# for readability of the config file.
PASS_ORDER = ("prune_weights", "palettize_weights", "linear_quantize_weights")


class MixedPrecision(StrictModel):
    """Per-tensor settings chosen within a size budget from per-layer sensitivity."""

    algorithm: Literal["mixed_precision"] = "mixed_precision"
    candidates: list[Identifier] = Field(
        min_length=1,
        description="experiment ids (Core ML-side k-means, linear quantization or pruning) "
        "each tensor may take; each is measured per layer (rule sensitivity)",
    )
    size_of: Identifier | None = Field(
        default=None, description="budget: the package size of this experiment's trial 1"
    )
    size_mb: float | None = Field(default=None, gt=0, description="budget: package MB (1e6 B)")
    compression_ratio: float | None = Field(
        default=None, gt=1, description="budget: fp16 package bytes / this"
    )
    measure: Measure = Field(default="kl", description="the per-tensor cost the search sums")
    search: SearchMethod = "knapsack"
    keep_fp16: bool = Field(default=True, description="a tensor may also stay fp16")

    @model_validator(mode="after")
    def _one_budget(self) -> MixedPrecision:
        given = [
            n for n in ("size_of", "size_mb", "compression_ratio") if getattr(self, n) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one budget: size_of, size_mb or compression_ratio "
                f"(given: {given or 'none'})"
            )
        if len(set(self.candidates)) != len(self.candidates):
            raise ValueError(f"candidates lists an experiment twice: {self.candidates}")
        return self

    def budget_label(self) -> str:
        if self.size_of is not None:
            return f"size of {self.size_of}"
        if self.size_mb is not None:
            return f"{self.size_mb:g} MB"
        return f"{self.compression_ratio:g}x"

    def label(self) -> str:
        method = "" if self.search == "knapsack" else f", {self.search}"
        return f"mixed, {self.budget_label()}{method}"

    def minimum_target(self) -> str:
        return "iOS16"  # each candidate is checked against the target as its own experiment

    def budget_bytes(self, fp16_package_bytes: int, size_of_bytes: int | None) -> int:
        if self.size_of is not None:
            assert size_of_bytes is not None, "size_of needs that experiment's package size"
            return int(size_of_bytes)
        if self.size_mb is not None:
            return int(self.size_mb * 1e6)
        assert self.compression_ratio is not None
        return int(fp16_package_bytes / self.compression_ratio)


def _options(
    params: MixedPrecision, records: dict[str, dict[str, Any]]
) -> tuple[dict[str, list[Option]], dict[str, dict[str, Any]]]:
    """Per tensor (the fp16 const's name) its options, and each tensor's fp16 facts."""
    tensors: dict[str, list[Option]] = {}
    dense: dict[str, dict[str, Any]] = {}
    for setting in params.candidates:
        for layer in records[setting]["layers"]:
            name = layer["const_name"]
            dense.setdefault(name, layer)
            option = Option(setting, layer["compressed_bytes"], float(layer[params.measure]))
            tensors.setdefault(name, []).append(option)
    if params.keep_fp16:
        for name, layer in dense.items():
            tensors[name].append(Option(FP16, layer["dense_bytes"], 0.0))
    return tensors, dense


def _fixed_bytes(records: dict[str, dict[str, Any]]) -> int:
    """Package bytes outside the weights the search prices: model.mil, biases, tensors no
    candidate compresses (under ``weight_threshold``), manifest.

    Taken from the candidates' packages, which coremltools saved as it saves the searched
    one (the converted fp16 package may hold more, e.g. the exporter's debug mapping). The
    program text grows a little per compressed op, so the largest figure is taken.
    """
    return max(
        r["package_bytes"] - sum(layer["compressed_bytes"] for layer in r["layers"])
        for r in records.values()
    )


def selection_configs(
    choices: list[Choice], candidates: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """{coremltools function: ``OptimizationConfig.from_dict`` dict} naming each tensor."""
    from .coreml_side import pass_config

    configs: dict[str, dict[str, Any]] = {}
    for choice in choices:
        if choice.option.setting == FP16:
            continue
        config = pass_config(candidates[choice.option.setting])
        entry = configs.setdefault(
            config.function, {"config_type": config.config_type, "op_name_configs": {}}
        )
        entry["op_name_configs"][choice.tensor] = config.options
    return {name: configs[name] for name in PASS_ORDER if name in configs}


def select_mixed_precision(
    *,
    params: MixedPrecision,
    records: dict[str, dict[str, Any]],
    candidates: dict[str, Any],
    size_of_bytes: int | None,
    selection: Path,
    output: Path,
    context: dict[str, Any],
) -> dict[str, Any]:
    """Search the options within the budget; write the per-op config and the search record.

    ``records``: the sensitivity record of each candidate experiment; ``candidates``: each
    candidate's compression params (typed).
    """
    import yaml

    first = next(iter(records.values()))
    budget = params.budget_bytes(first["fp16_package_bytes"], size_of_bytes)
    fixed = _fixed_bytes(records)
    tensors, dense = _options(params, records)
    choices = search(tensors, budget - fixed, params.search)
    predicted = fixed + sum(c.option.stored_bytes for c in choices)
    configs = selection_configs(choices, candidates)
    text = (
        f"# Mixed precision for {context['model']} / {context['experiment']}: "
        f"{params.budget_label()} = {budget} bytes, search {params.search} on {params.measure}.\n"
        "# One coremltools.optimize.coreml function per key; each value is the dict\n"
        "# OptimizationConfig.from_dict reads (tensors not named stay fp16).\n"
    )
    write_text_atomic(selection, text + yaml.safe_dump(configs, sort_keys=False))
    counts: dict[str, int] = {}
    for choice in choices:
        counts[choice.option.setting] = counts.get(choice.option.setting, 0) + 1
    record = {
        "stage": "search_mixed_precision",
        **context,
        "compression": params.model_dump(mode="json"),
        "budget_bytes": budget,
        "fixed_bytes": fixed,
        "predicted_package_bytes": predicted,
        "predicted_cost": sum(c.option.cost for c in choices),
        "settings_chosen": counts,
        "choices": [
            {
                "const_name": c.tensor,
                "op_name": dense[c.tensor]["op_name"],
                "setting": c.option.setting,
                "stored_bytes": c.option.stored_bytes,
                "cost": c.option.cost,
                "dense_bytes": dense[c.tensor]["dense_bytes"],
            }
            for c in choices
        ],
        "provenance": record_provenance("search_mixed_precision"),
    }
    write_json_atomic(output, record)
    log.info("budget %d bytes: predicted %d bytes, choices %s", budget, predicted, counts)
    return record


def apply_selection(mlmodel: Any, selection: Path) -> Any:
    """Run each coremltools function of ``selection.yaml`` on only the tensors it names."""
    import coremltools.optimize.coreml as cto
    import yaml

    configs = yaml.safe_load(Path(selection).read_text()) or {}
    for function, config in configs.items():
        if function not in PASS_ORDER:
            raise ValueError(f"{selection}: {function!r} is not one of {PASS_ORDER}")
        mlmodel = getattr(cto, function)(mlmodel, cto.OptimizationConfig.from_dict(config))
    return mlmodel


def _apply_mixed_precision(mlmodel: Any, params: MixedPrecision, *, selection: Path) -> Any:
    return apply_selection(mlmodel, selection)


ALGORITHMS.add(
    "mixed_precision",
    Algorithm(
        MixedPrecision,
        "Mixed Precision (searched)",
        "Post Training",
        kind="coreml",
        marker="8",
        apply=_apply_mixed_precision,
        inputs=("selection",),
    ),
)
