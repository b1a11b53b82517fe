"""Stage train_baseline: the workflow trains a ``train``-source model's fp32 checkpoint."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..data import DataSelection, evaluation_loader, training_dataset
from ..io import save_with, sha256_file, write_json_atomic
from ..models import ModelSpec, build_model
from ..provenance import StageTimer, package_versions
from ..schema_base import StrictModel
from .loop import train
from .recipe import TrainingRecipe, job_fingerprint


def train_baseline(
    *,
    model: ModelSpec,
    recipe: TrainingRecipe,
    training: StrictModel,
    evaluation: DataSelection,
    weights: Path,
    manifest: Path,
    checkpoint_dir: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Train from a seeded initialisation; save the state_dict and the weights manifest."""
    import torch

    timer = StageTimer()
    fingerprint = job_fingerprint(
        recipe,
        weights=None,
        model=model,
        training=training,
        evaluation={**asdict(evaluation), "source": evaluation.source.model_dump(mode="json")},
    )
    with timer.section("train"):
        torch.manual_seed(recipe.seed)
        network = build_model(model.architecture, model.num_classes)
        result = train(
            network,
            recipe=recipe,
            train_set=training_dataset(training, model.preprocessing, recipe),
            eval_loader=evaluation_loader(evaluation, model.preprocessing),
            checkpoint_dir=checkpoint_dir,
            progress=progress,
            fingerprint=fingerprint,
        )
        save_with(lambda tmp: torch.save(network.state_dict(), tmp), Path(weights))
    record = {
        "stage": "train",
        "model": model.id,
        "kind": "train",
        "origin": f"trained by the workflow on {training.kind}",  # type: ignore[attr-defined]
        "sha256": sha256_file(Path(weights)),
        "bytes": Path(weights).stat().st_size,
        "recipe": recipe.model_dump(mode="json"),
        "training_fingerprint": fingerprint,
        **result,
        "timing": timer.summary(),
        "versions": package_versions(),
    }
    write_json_atomic(Path(manifest), record)
    return record
