"""The training recipe: hyper-parameters of one training or fine-tuning run (no torch here)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ..data.transforms import Augmentation
from ..schema_base import StrictModel


class TrainingRecipe(StrictModel):
    """Hyper-parameters of one training run (torchvision classification reference names)."""

    epochs: int = Field(default=5, ge=1, le=10_000)
    batch_size: int = Field(default=128, gt=0, le=65_536)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(default=0.05, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=5e-4, ge=0)
    lr_scheduler: Literal["cosine", "step", "constant"] = "cosine"
    lr_step_size: int = Field(default=30, gt=0, description="epochs per step (step scheduler)")
    lr_gamma: float = Field(default=0.1, gt=0, le=1, description="decay factor (step scheduler)")
    lr_warmup_epochs: int = Field(default=0, ge=0)
    lr_warmup_decay: float = Field(default=0.01, gt=0, le=1, description="warm-up start factor")
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    augmentation: Augmentation = Field(
        default="pad_crop_flip",
        description="detection: none or horizontal_flip (boxes move with the pixels)",
    )
    train_limit: int | None = Field(default=None, gt=0, description="train on the first N images")
    max_steps_per_epoch: int | None = Field(default=None, gt=0)
    # The training job's own validation: data.limit / data.batch_size are the evaluation
    # stage's settings and must not retrain anything when they change.
    validation_limit: int | None = Field(
        default=None, gt=0, description="validate each epoch on the first N evaluation images"
    )
    seed: int = Field(default=0, ge=0, description="initialisation, data order, augmentation")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: CUDA where available"
    )
    amp: bool = Field(default=True, description="mixed precision on CUDA (ignored on CPU)")

    @model_validator(mode="after")
    def _warmup_shorter_than_training(self) -> TrainingRecipe:
        if self.lr_warmup_epochs >= self.epochs:
            raise ValueError(
                f"lr_warmup_epochs={self.lr_warmup_epochs} must be < epochs={self.epochs}"
            )
        return self

    def fingerprint(self) -> str:
        """Identifies the recipe in a checkpoint, so a changed recipe never resumes an old run."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def effective_recipe(
    model_recipe: dict[str, Any] | None, experiment_recipe: dict[str, Any] | None, trial: int
) -> TrainingRecipe:
    """Defaults ← the model's finetune recipe ← the experiment's recipe; seed + trial − 1.

    Trials differ only in data order (and augmentation draws): the seed moves, the starting
    weights do not.
    """
    merged = {**(model_recipe or {}), **(experiment_recipe or {})}
    recipe = TrainingRecipe.model_validate(merged)
    return recipe.model_copy(update={"seed": recipe.seed + trial - 1})


def job_fingerprint(recipe: TrainingRecipe, *, weights: Path | None, **settings: Any) -> str:
    """Identifies one training job in its checkpoint: the recipe, every other setting the
    result depends on (algorithm, model, data: pydantic objects or JSON), and the digest of
    the starting weights. A checkpoint is resumed only by the job with this fingerprint."""
    from ..io import json_digest, sha256_file

    parts = {
        "recipe": recipe.model_dump(mode="json"),
        "weights_sha256": sha256_file(weights) if weights is not None else None,
        **{
            name: value.model_dump(mode="json") if hasattr(value, "model_dump") else value
            for name, value in settings.items()
        },
    }
    return json_digest(parts)[:16]
