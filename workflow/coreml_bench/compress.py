"""Stage 3: the compression-algorithm registry (post-training, on the fp16 Core ML package).

Each entry pairs a validated parameter model with the function that applies it, so adding an
algorithm is one entry here; the config's discriminated union is built from this registry.
coremltools is imported inside the functions: the Snakefile imports this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from .registry import Registry
from .schema_base import StrictModel

log = logging.getLogger(__name__)

# Deployment targets in the order Core ML gained features; iOS and macOS releases pair up.
TARGET_RANK = {"iOS16": 16, "macOS13": 16, "iOS17": 17, "macOS14": 17, "iOS18": 18, "macOS15": 18}
DeploymentTarget = Literal["iOS16", "iOS17", "iOS18", "macOS13", "macOS14", "macOS15"]


class NoCompression(StrictModel):
    """The fp16 baseline: the converted package itself."""

    algorithm: Literal["none"] = "none"

    def label(self) -> str:
        return "Float16"

    def minimum_target(self) -> str:
        return "iOS16"


def check_group_size(granularity: str, group_size: int | None) -> None:
    """Palettization: a group size goes with per_grouped_channel and only with it."""
    if granularity == "per_grouped_channel" and group_size is None:
        raise ValueError("group_size is required when granularity is 'per_grouped_channel'")
    if granularity == "per_tensor" and group_size is not None:
        raise ValueError(f"group_size={group_size} is only valid with per_grouped_channel")


def check_block_size(granularity: str, block_size: int | None) -> None:
    """Linear quantization: a block size goes with per_block and only with it."""
    if granularity == "per_block" and block_size is None:
        raise ValueError("block_size is required when granularity is 'per_block'")
    if granularity != "per_block" and block_size is not None:
        raise ValueError(f"block_size={block_size} is only valid with per_block")


def linear_quantization_label(dtype: str, granularity: str, block_size: int | None) -> str:
    if granularity == "per_block":
        return f"{dtype} per-block {block_size}"
    return f"{dtype} {granularity.replace('_', '-')}"


def linear_quantization_target(dtype: str, granularity: str) -> str:
    """4-bit types and per-block scales arrived with iOS18."""
    return "iOS18" if dtype in ("int4", "uint4") or granularity == "per_block" else "iOS16"


def check_sparsity_or_n_m(target_sparsity: float | None, n_m: tuple[int, int] | None) -> None:
    if (target_sparsity is None) == (n_m is None):
        raise ValueError("set exactly one of target_sparsity or n_m")
    if n_m is not None and not 0 < n_m[0] < n_m[1]:
        raise ValueError(f"n_m={list(n_m)} must satisfy 0 < n < m")


def sparsity_label(target_sparsity: float | None, n_m: tuple[int, int] | None) -> str:
    if n_m is not None:
        return f"{n_m[0]}:{n_m[1]} sparsity"
    return f"Unstructured Sparsity {round(100 * (target_sparsity or 0))}%"


class PalettizeKmeans(StrictModel):
    """Data-free k-means palettization (``coremltools.optimize.coreml.palettize_weights``)."""

    algorithm: Literal["palettize_kmeans"] = "palettize_kmeans"
    n_bits: Literal[1, 2, 3, 4, 6, 8]
    granularity: Literal["per_tensor", "per_grouped_channel"] = "per_tensor"
    group_size: int | None = Field(default=None, gt=0)
    weight_threshold: int = Field(default=2048, ge=0)
    num_kmeans_workers: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _group_size_matches_granularity(self) -> PalettizeKmeans:
        check_group_size(self.granularity, self.group_size)
        return self

    def label(self) -> str:
        suffix = f", group {self.group_size}" if self.granularity == "per_grouped_channel" else ""
        return f"{self.n_bits} bit{suffix}"

    def minimum_target(self) -> str:
        return "iOS18" if self.granularity == "per_grouped_channel" else "iOS16"


class QuantizeLinear(StrictModel):
    """Weight-only linear quantization (``linear_quantize_weights``)."""

    algorithm: Literal["quantize_linear"] = "quantize_linear"
    dtype: Literal["int8", "uint8", "int4", "uint4"] = "int8"
    mode: Literal["linear_symmetric", "linear"] = "linear_symmetric"
    granularity: Literal["per_tensor", "per_channel", "per_block"] = "per_channel"
    block_size: int | None = Field(default=None, gt=0)
    weight_threshold: int = Field(default=2048, ge=0)

    @model_validator(mode="after")
    def _block_size_matches_granularity(self) -> QuantizeLinear:
        check_block_size(self.granularity, self.block_size)
        return self

    def label(self) -> str:
        return linear_quantization_label(self.dtype, self.granularity, self.block_size)

    def minimum_target(self) -> str:
        return linear_quantization_target(self.dtype, self.granularity)


class PruneMagnitude(StrictModel):
    """Magnitude pruning to a target sparsity or an n:m pattern (``prune_weights``)."""

    algorithm: Literal["prune_magnitude"] = "prune_magnitude"
    target_sparsity: float | None = Field(default=None, gt=0.0, lt=1.0)
    n_m: tuple[int, int] | None = None
    weight_threshold: int = Field(default=2048, ge=0)

    @model_validator(mode="after")
    def _one_of_sparsity_or_n_m(self) -> PruneMagnitude:
        check_sparsity_or_n_m(self.target_sparsity, self.n_m)
        return self

    def label(self) -> str:
        return sparsity_label(self.target_sparsity, self.n_m)

    def minimum_target(self) -> str:
        return "iOS16"


@dataclass(frozen=True)
class Algorithm:
    params: type[StrictModel]
    apply: Callable[[Any, Any], Any] | None  # (MLModel, params) -> MLModel; None: no job
    display_name: str
    workflow: str
    # "coreml": applied to the fp16 package (rule compress); "torch": to the fp32 torch
    # model before conversion (rule compress_torch, coreml_bench.compress_torch);
    # "none": the fp16 baseline itself.
    kind: Literal["coreml", "torch", "none"] = "coreml"


ALGORITHMS: Registry[Algorithm] = Registry("compression algorithm")


def _apply_palettize_kmeans(mlmodel: Any, p: PalettizeKmeans) -> Any:
    import coremltools.optimize.coreml as cto

    op_config = cto.OpPalettizerConfig(
        mode="kmeans",
        nbits=p.n_bits,
        granularity=p.granularity,
        group_size=p.group_size or 32,
        weight_threshold=p.weight_threshold,
        num_kmeans_workers=p.num_kmeans_workers,
    )
    return cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=op_config))


def _apply_quantize_linear(mlmodel: Any, p: QuantizeLinear) -> Any:
    import coremltools.optimize.coreml as cto

    op_config = cto.OpLinearQuantizerConfig(
        mode=p.mode,
        dtype=p.dtype,
        granularity=p.granularity,
        block_size=p.block_size or 32,
        weight_threshold=p.weight_threshold,
    )
    return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op_config))


def _apply_prune_magnitude(mlmodel: Any, p: PruneMagnitude) -> Any:
    import coremltools.optimize.coreml as cto

    op_config = cto.OpMagnitudePrunerConfig(
        target_sparsity=p.target_sparsity,
        n_m_ratio=tuple(p.n_m) if p.n_m is not None else None,
        weight_threshold=p.weight_threshold,
    )
    return cto.prune_weights(mlmodel, cto.OptimizationConfig(global_config=op_config))


ALGORITHMS.add("none", Algorithm(NoCompression, None, "n/a", "n/a", kind="none"))
ALGORITHMS.add(
    "palettize_kmeans",
    Algorithm(PalettizeKmeans, _apply_palettize_kmeans, "K-Means", "Post Training"),
)
ALGORITHMS.add(
    "quantize_linear",
    Algorithm(QuantizeLinear, _apply_quantize_linear, "Linear Quantization", "Post Training"),
)
ALGORITHMS.add(
    "prune_magnitude",
    Algorithm(PruneMagnitude, _apply_prune_magnitude, "Magnitude Pruning", "Post Training"),
)


def weight_encodings(package: Path) -> dict[str, int]:
    """How the weights of conv/linear ops are stored: dense const or a constexpr op type.

    Makes skipped tensors (under weight_threshold, indivisible channel counts, depthwise
    convs for int4 per-block and n:m) visible in the manifest.
    """
    from .weights_roundtrip import read_package_weights

    counts: dict[str, int] = {}
    for weight in read_package_weights(package):
        counts[weight.weight_encoding] = counts.get(weight.weight_encoding, 0) + 1
    return counts


def compress_package(
    *,
    compression: dict[str, Any],
    baseline_package: Path,
    baseline_manifest: dict[str, Any],
    package: Path,
    manifest: Path,
    context: dict[str, Any],
) -> dict[str, Any]:
    """Apply one registered algorithm to the fp16 package; record ratios and op counts."""
    from .manifest import StageTimer, write_json_atomic
    from .mlpackage import open_package, save_atomic

    entry = ALGORITHMS[compression["algorithm"]]
    params = entry.params.model_validate(compression)
    if entry.apply is None:
        raise ValueError(f"algorithm {compression['algorithm']!r} has no compression step")
    timer = StageTimer()
    with timer.section("load"):
        mlmodel = open_package(baseline_package, skip_model_load=True)
    log.info("applying %s %s", compression["algorithm"], params.label())
    with timer.section("compress"):
        compressed = entry.apply(mlmodel, params)
    with timer.section("save"):
        save_atomic(compressed, package)
    record = compression_record(
        entry=entry,
        params=params,
        compression=compression,
        package=package,
        baseline_manifest=baseline_manifest,
        context=context,
        timer=timer,
    )
    write_json_atomic(manifest, record)
    return record


def compression_record(
    *,
    entry: Algorithm,
    params: Any,
    compression: dict[str, Any],
    package: Path,
    baseline_manifest: dict[str, Any],
    context: dict[str, Any],
    timer: Any,
) -> dict[str, Any]:
    """The manifest of a compressed package: ratios against the fp16 baseline, op counts."""
    from .manifest import package_versions
    from .mlpackage import package_summary

    summary = package_summary(package)
    return {
        "stage": "compress",
        **context,
        "compression": compression,
        "algorithm_display": entry.display_name,
        "workflow": entry.workflow,
        "config_label": params.label(),
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
    }


def _ratio(baseline: int, compressed: int) -> float | None:
    return round(baseline / compressed, 4) if compressed else None
