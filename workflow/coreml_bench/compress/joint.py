"""Joint compression presets (coremltools 8+): a second post-training pass compresses what
the first one left, with ``joint_compression=True``.

* ``prune_palettize``: magnitude pruning, then k-means on the non-zero values (sparse + LUT:
  ``constexpr_lut_to_sparse`` → ``constexpr_sparse_to_dense``);
* ``palettize_int8_lut``: k-means, then the look-up table quantized to int8
  (``constexpr_blockwise_shift_scale`` → ``constexpr_lut_to_dense``);
* ``prune_quantize``: pruning, then int8 quantization of the non-zero values
  (``constexpr_sparse_blockwise_shift_scale`` → ``constexpr_sparse_to_dense``).

Each pass is the per-tensor setting of ``coreml_side`` (``PassConfig``), so a preset is two
of them; the chains are iOS18 ops, which the executor decompresses like any other constexpr.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ..schema_base import StrictModel
from .common import MAX_CHANNEL_BLOCK, MAX_KMEANS_WORKERS, check_group_size
from .coreml_side import (
    PalettizeKmeans,
    PassConfig,
    PerTensorSetting,
    PruneMagnitude,
    QuantizeLinear,
    pass_config,
)
from .coverage import WeightShape
from .registry import ALGORITHMS, Algorithm


class _JointBase(StrictModel):
    weight_threshold: int = Field(default=2048, ge=0)

    def minimum_target(self) -> str:
        return "iOS18"  # the joint constexpr chains are iOS18 ops

    def stages(self) -> list[tuple[PerTensorSetting, bool]]:
        """The per-tensor settings applied in order, each with its ``joint_compression`` flag."""
        raise NotImplementedError

    def passes(self) -> list[tuple[PassConfig, bool]]:
        """The coremltools passes in order, each with its ``joint_compression`` flag."""
        return [(pass_config(setting), joint) for setting, joint in self.stages()]

    def skip_reason(self, weight: WeightShape) -> str | None:
        """The first pass decides which weights are compressed; the joint pass only
        compresses further what it compressed."""
        return self.stages()[0][0].skip_reason(weight)


class PrunePalettize(_JointBase):
    """Magnitude pruning, then k-means palettization of the remaining values."""

    algorithm: Literal["prune_palettize"] = "prune_palettize"
    target_sparsity: float = Field(gt=0.0, lt=1.0)
    n_bits: Literal[1, 2, 3, 4, 6, 8]
    num_kmeans_workers: int = Field(default=1, ge=1, le=MAX_KMEANS_WORKERS)

    def label(self) -> str:
        return f"{self.target_sparsity:.0%} sparse + {self.n_bits} bit"

    def stages(self) -> list[tuple[PerTensorSetting, bool]]:
        palettize = PalettizeKmeans(
            n_bits=self.n_bits,
            weight_threshold=self.weight_threshold,
            num_kmeans_workers=self.num_kmeans_workers,
        )
        return [(_prune(self.target_sparsity, self.weight_threshold), False), (palettize, True)]


class PalettizeInt8Lut(_JointBase):
    """K-means palettization whose look-up table is then quantized to int8."""

    algorithm: Literal["palettize_int8_lut"] = "palettize_int8_lut"
    n_bits: Literal[1, 2, 3, 4, 6, 8]
    granularity: Literal["per_tensor", "per_grouped_channel"] = "per_tensor"
    group_size: int | None = Field(default=None, gt=0, le=MAX_CHANNEL_BLOCK)
    num_kmeans_workers: int = Field(default=1, ge=1, le=MAX_KMEANS_WORKERS)

    @model_validator(mode="after")
    def _group_size_matches_granularity(self) -> PalettizeInt8Lut:
        check_group_size(self.granularity, self.group_size)
        return self

    def label(self) -> str:
        return f"{self.stages()[0][0].label()}, int8 LUT"

    def stages(self) -> list[tuple[PerTensorSetting, bool]]:
        palettize = PalettizeKmeans(
            n_bits=self.n_bits,
            granularity=self.granularity,
            group_size=self.group_size,
            weight_threshold=self.weight_threshold,
            num_kmeans_workers=self.num_kmeans_workers,
        )
        # Joint mode quantizes the tables of palettized weights; the threshold keeps the
        # weights the first pass left dense (small ones) dense here too.
        lut = QuantizeLinear(
            dtype="int8", granularity="per_tensor", weight_threshold=self.weight_threshold
        )
        return [(palettize, False), (lut, True)]


class PruneQuantize(_JointBase):
    """Magnitude pruning, then int8 linear quantization of the remaining values."""

    algorithm: Literal["prune_quantize"] = "prune_quantize"
    target_sparsity: float = Field(gt=0.0, lt=1.0)
    granularity: Literal["per_tensor", "per_channel"] = "per_channel"

    def label(self) -> str:
        return f"{self.target_sparsity:.0%} sparse + int8"

    def stages(self) -> list[tuple[PerTensorSetting, bool]]:
        quantize = QuantizeLinear(
            dtype="int8", granularity=self.granularity, weight_threshold=self.weight_threshold
        )
        return [(_prune(self.target_sparsity, self.weight_threshold), False), (quantize, True)]


def _prune(target_sparsity: float, weight_threshold: int) -> PruneMagnitude:
    return PruneMagnitude(target_sparsity=target_sparsity, weight_threshold=weight_threshold)


def _apply_joint(mlmodel: Any, params: _JointBase) -> Any:
    for config, joint in params.passes():
        mlmodel = config.run(mlmodel, joint_compression=joint)
    return mlmodel


for _name, _params, _display, _marker in (
    ("prune_palettize", PrunePalettize, "Joint: Pruning + K-Means", "<"),
    ("palettize_int8_lut", PalettizeInt8Lut, "Joint: K-Means + int8 LUT", ">"),
    ("prune_quantize", PruneQuantize, "Joint: Pruning + int8", "H"),
):
    ALGORITHMS.add(
        _name,
        Algorithm(
            _params, _display, "Post Training", kind="coreml", marker=_marker, apply=_apply_joint
        ),
    )
