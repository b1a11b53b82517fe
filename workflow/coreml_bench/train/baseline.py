"""Stage train_baseline: the workflow trains a ``train``-source model's fp32 checkpoint."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..data import DataSelection
from ..fingerprint import record_provenance
from ..io import save_with, sha256_file, write_json_atomic
from ..models import ModelSpec, build_model, load_model
from ..provenance import StageTimer, package_versions
from ..schema_base import StrictModel
from .loop import train
from .recipe import TrainingRecipe, job_fingerprint
from .tasks import bind_task


def train_baseline(
    *,
    model: ModelSpec,
    recipe: TrainingRecipe,
    training: StrictModel,
    evaluation: DataSelection,
    weights: Path,
    manifest: Path,
    checkpoint_dir: Path,
    init: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train from a seeded initialisation, or from ``init`` (a checkpoint of the network or,
    for a detector, of its backbone); save the state_dict and the weights manifest."""
    import torch

    timer = StageTimer()
    fingerprint = job_fingerprint(
        recipe,
        weights=init,
        model=model,
        training=training,
        evaluation={**asdict(evaluation), "source": evaluation.source.model_dump(mode="json")},
    )
    with timer.section("train"):
        torch.manual_seed(recipe.seed)
        if init is None:
            network = build_model(model.architecture, model.num_classes)
        else:
            network = load_model(model.architecture, init, model.num_classes)
        with bind_task(model, training, evaluation) as task:
            result = train(
                network,
                recipe=recipe,
                checkpoint_dir=checkpoint_dir,
                progress=progress,
                fingerprint=fingerprint,
                **task.loop_arguments(recipe),
            )
        save_with(lambda tmp: torch.save(network.state_dict(), tmp), Path(weights))
    record = {
        "stage": "train",
        "model": model.id,
        "kind": "train",
        "origin": f"trained by the workflow on {training.kind}",  # type: ignore[attr-defined]
        "init_sha256": sha256_file(init) if init is not None else None,
        "sha256": sha256_file(Path(weights)),
        "bytes": Path(weights).stat().st_size,
        "recipe": recipe.model_dump(mode="json"),
        "training_fingerprint": fingerprint,
        **result,
        "timing": timer.summary(),
        "versions": package_versions(),
        "provenance": record_provenance("train_baseline"),
    }
    write_json_atomic(Path(manifest), record)
    return record
