"""Section ``models``: which networks, with which weights, evaluated on what."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from ..data import Preprocessing
from ..models import ARCHITECTURES, ModelSpec
from ..models.sources import WeightsSource
from ..schema_base import Identifier, StrictModel
from ..train.recipe import TrainingRecipe
from .data import EvaluationData, TrainingData


class ModelConfig(StrictModel):
    id: Identifier
    architecture: str = Field(description="a name from the model registry")
    source: WeightsSource
    display_name: str | None = None
    num_classes: int | None = Field(
        default=None,
        gt=0,
        le=100_000,
        description="defaults to the architecture's (1000 ImageNet, 80 COCO)",
    )
    evaluation_data: EvaluationData | None = Field(  # type: ignore[valid-type]
        default=None,
        description="this model's evaluation set (e.g. COCO for a detector); "
        "defaults to data.evaluation",
    )
    training_data: TrainingData | None = Field(  # type: ignore[valid-type]
        default=None,
        description="this model's training split (e.g. COCO train2017 for a detector); "
        "defaults to data.training",
    )
    preprocessing: Preprocessing | None = Field(
        default=None, description="defaults to the architecture's own preprocessing"
    )
    finetune: TrainingRecipe | None = Field(
        default=None,
        description="fine-tuning recipe for this model's training-time experiments; the fields "
        "an experiment's own recipe sets override it",
    )

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {value!r}; known: {', '.join(ARCHITECTURES.names())}"
            )
        return value

    @model_validator(mode="after")
    def _channels_match_architecture(self) -> ModelConfig:
        channels = ARCHITECTURES[self.architecture].in_channels
        if self.preprocessing is not None and len(self.preprocessing.mean) != channels:
            raise ValueError(
                f"preprocessing has {len(self.preprocessing.mean)} mean/std values but "
                f"architecture {self.architecture!r} takes {channels} input channel(s)"
            )
        return self

    def effective_preprocessing(self) -> Preprocessing:
        if self.preprocessing is not None:
            return self.preprocessing
        arch = ARCHITECTURES[self.architecture]
        return Preprocessing(
            resize=arch.resize,
            crop_size=arch.input_size,
            mean=arch.mean,
            std=arch.std,
            interpolation=arch.interpolation,  # type: ignore[arg-type]
        )

    def effective_display_name(self) -> str:
        return self.display_name or ARCHITECTURES[self.architecture].display_name

    def resolved(self) -> dict[str, Any]:
        """Every field, registry defaults filled in, as JSON: what the MLflow run records."""
        spec = self.spec()
        return {
            **self.model_dump(mode="json"),
            "preprocessing": spec.preprocessing.model_dump(mode="json"),
            "display_name": self.effective_display_name(),
            "input_size": spec.input_size,
            "in_channels": spec.in_channels,
            "num_classes": spec.num_classes,
            "task": spec.task,
        }

    def spec(self) -> ModelSpec:
        """The model as its jobs see it: registry defaults filled in, presentation left out."""
        arch = ARCHITECTURES[self.architecture]
        return ModelSpec(
            id=self.id,
            architecture=self.architecture,
            source=self.source,
            num_classes=self.num_classes or arch.num_classes,
            preprocessing=self.effective_preprocessing(),
            in_channels=arch.in_channels,
            task=arch.task,
        )
