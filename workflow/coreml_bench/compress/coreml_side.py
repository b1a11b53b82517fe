"""Core ML-side post-training algorithms (on the fp16 package), one registry entry each.

Each entry pairs a validated parameter model with the function that applies it, so adding an
algorithm is one entry here. coremltools is imported inside the functions: the Snakefile
imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from ..schema_base import StrictModel
from .common import (
    MAX_CHANNEL_BLOCK,
    MAX_KMEANS_WORKERS,
    check_block_size,
    check_group_size,
    check_sparsity_or_n_m,
    linear_quantization_label,
    linear_quantization_target,
    sparsity_label,
)
from .coverage import WeightShape
from .registry import ALGORITHMS, Algorithm


class NoCompression(StrictModel):
    """The fp16 baseline: the converted package itself."""

    algorithm: Literal["none"] = "none"

    def label(self) -> str:
        return "Float16"

    def minimum_target(self) -> str:
        return "iOS16"


class PalettizeKmeans(StrictModel):
    """Data-free k-means palettization (``coremltools.optimize.coreml.palettize_weights``)."""

    algorithm: Literal["palettize_kmeans"] = "palettize_kmeans"
    n_bits: Literal[1, 2, 3, 4, 6, 8]
    granularity: Literal["per_tensor", "per_grouped_channel"] = "per_tensor"
    group_size: int | None = Field(default=None, gt=0, le=MAX_CHANNEL_BLOCK)
    weight_threshold: int = Field(default=2048, ge=0)
    num_kmeans_workers: int = Field(default=1, ge=1, le=MAX_KMEANS_WORKERS)

    @model_validator(mode="after")
    def _group_size_matches_granularity(self) -> PalettizeKmeans:
        check_group_size(self.granularity, self.group_size)
        return self

    def label(self) -> str:
        suffix = f", group {self.group_size}" if self.granularity == "per_grouped_channel" else ""
        return f"{self.n_bits} bit{suffix}"

    def minimum_target(self) -> str:
        return "iOS18" if self.granularity == "per_grouped_channel" else "iOS16"

    def skip_reason(self, weight: WeightShape) -> str | None:
        """Why coremltools leaves this weight dense (its documented rules), or None."""
        if weight.size <= self.weight_threshold:
            return f"at most weight_threshold={self.weight_threshold} elements"
        if self.group_size and weight.output_channels % self.group_size:
            return f"{weight.output_channels} output channels not divisible by group_size"
        return None


class QuantizeLinear(StrictModel):
    """Weight-only linear quantization (``linear_quantize_weights``)."""

    algorithm: Literal["quantize_linear"] = "quantize_linear"
    dtype: Literal["int8", "uint8", "int4", "uint4"] = "int8"
    mode: Literal["linear_symmetric", "linear"] = "linear_symmetric"
    granularity: Literal["per_tensor", "per_channel", "per_block"] = "per_channel"
    block_size: int | None = Field(default=None, gt=0, le=MAX_CHANNEL_BLOCK)
    weight_threshold: int = Field(default=2048, ge=0)

    @model_validator(mode="after")
    def _block_size_matches_granularity(self) -> QuantizeLinear:
        check_block_size(self.granularity, self.block_size)
        return self

    def label(self) -> str:
        return linear_quantization_label(self.dtype, self.granularity, self.block_size)

    def minimum_target(self) -> str:
        return linear_quantization_target(self.dtype, self.granularity)

    def skip_reason(self, weight: WeightShape) -> str | None:
        """Why coremltools leaves this weight dense (its documented rules), or None."""
        if weight.size <= self.weight_threshold:
            return f"at most weight_threshold={self.weight_threshold} elements"
        if self.block_size and weight.input_channels % self.block_size:
            return f"{weight.input_channels} input channels not divisible by block_size"
        return None


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

    def skip_reason(self, weight: WeightShape) -> str | None:
        """Why coremltools leaves this weight dense (its documented rules), or None.

        n:m patterns also skip depthwise convs, which this estimate does not model."""
        if weight.size <= self.weight_threshold:
            return f"at most weight_threshold={self.weight_threshold} elements"
        return None


@dataclass(frozen=True)
class PassConfig:
    """A setting as coremltools takes it: the ``coremltools.optimize.coreml`` function, its
    op config class and that class's options (the dict ``OptimizationConfig.from_dict``
    reads). Every setting here compresses each tensor on its own."""

    function: str
    config_type: str
    options: dict[str, Any]

    def optimization_config(self, op_names: list[str] | None = None) -> Any:
        """The setting for every tensor (``global_config``), or only for ``op_names``."""
        import coremltools.optimize.coreml as cto

        op_config = getattr(cto, self.config_type)(**self.options)
        if op_names is None:
            return cto.OptimizationConfig(global_config=op_config)
        return cto.OptimizationConfig(op_name_configs=dict.fromkeys(op_names, op_config))

    def run(
        self, mlmodel: Any, op_names: list[str] | None = None, joint_compression: bool = False
    ) -> Any:
        """The pass on ``mlmodel``; ``joint_compression`` compresses further what an earlier
        pass compressed (coremltools 8+), instead of decompressing it first."""
        import coremltools.optimize.coreml as cto

        function = getattr(cto, self.function)
        config = self.optimization_config(op_names)
        return function(mlmodel, config, joint_compression=joint_compression)


# The settings that compress each tensor on its own (one coremltools pass each).
PerTensorSetting = PalettizeKmeans | QuantizeLinear | PruneMagnitude


def pass_config(p: PerTensorSetting) -> PassConfig:
    """The coremltools call a per-tensor setting stands for."""
    if isinstance(p, PalettizeKmeans):
        options = {
            "mode": "kmeans",
            "nbits": p.n_bits,
            "granularity": p.granularity,
            "group_size": p.group_size or 32,
            "weight_threshold": p.weight_threshold,
            "num_kmeans_workers": p.num_kmeans_workers,
        }
        return PassConfig("palettize_weights", "OpPalettizerConfig", options)
    if isinstance(p, QuantizeLinear):
        options = {
            "mode": p.mode,
            "dtype": p.dtype,
            "granularity": p.granularity,
            "block_size": p.block_size or 32,
            "weight_threshold": p.weight_threshold,
        }
        return PassConfig("linear_quantize_weights", "OpLinearQuantizerConfig", options)
    options = {
        "target_sparsity": p.target_sparsity,
        "n_m_ratio": list(p.n_m) if p.n_m is not None else None,
        "weight_threshold": p.weight_threshold,
    }
    return PassConfig("prune_weights", "OpMagnitudePrunerConfig", options)


PER_TENSOR_ALGORITHMS = ("palettize_kmeans", "quantize_linear", "prune_magnitude")


def _apply_per_tensor(mlmodel: Any, p: PerTensorSetting) -> Any:
    return pass_config(p).run(mlmodel)


ALGORITHMS.add("none", Algorithm(NoCompression, "n/a", "n/a", kind="none", marker="*"))
ALGORITHMS.add(
    "palettize_kmeans",
    Algorithm(
        PalettizeKmeans,
        "K-Means",
        "Post Training",
        kind="coreml",
        marker="o",
        apply=_apply_per_tensor,
    ),
)
ALGORITHMS.add(
    "quantize_linear",
    Algorithm(
        QuantizeLinear,
        "Linear Quantization",
        "Post Training",
        kind="coreml",
        marker="s",
        apply=_apply_per_tensor,
    ),
)
ALGORITHMS.add(
    "prune_magnitude",
    Algorithm(
        PruneMagnitude,
        "Magnitude Pruning",
        "Post Training",
        kind="coreml",
        marker="^",
        apply=_apply_per_tensor,
    ),
)
