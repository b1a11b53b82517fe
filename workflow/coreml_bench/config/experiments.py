"""Section ``experiments``: which compression settings, on which models, how many trials.

The ``compression`` union is built from the algorithm registry (``compress/``, plugins).
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from ..compress import ALGORITHMS, Algorithm
from ..compress.torch_side import PublishedConfigFile
from ..schema_base import Identifier, StrictModel

CompressionSpec = Annotated[
    Union[tuple(entry.params for _, entry in ALGORITHMS.items())],  # noqa: UP007
    Field(discriminator="algorithm"),
]


class ExperimentConfig(StrictModel):
    id: Identifier
    compression: CompressionSpec  # type: ignore[valid-type]
    label: str | None = Field(default=None, description="the table's Config column")
    trials: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="default: 3 for training-time algorithms (as in the seeds), else 1",
    )
    models: list[str] | None = Field(default=None, description="model ids; default: all")

    def effective_label(self) -> str:
        return self.label or self.compression.label()

    def algorithm(self) -> Algorithm:
        return ALGORITHMS[self.compression.algorithm]

    def effective_trials(self) -> int:
        if self.trials is not None:
            return self.trials
        return 3 if self.algorithm().workflow == "Training Time" else 1

    def published_config(self) -> PublishedConfigFile | None:
        """The coremltools config this experiment reads by URL, if it names one."""
        config = getattr(self.compression, "config_yaml", None)
        return config if isinstance(config, PublishedConfigFile) else None

    def applies_to(self, model_id: str) -> bool:
        return self.models is None or model_id in self.models
