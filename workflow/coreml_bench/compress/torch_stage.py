"""Stage compress_torch: a torch-side algorithm applied to the fp32 checkpoint (fine-tuning
where it trains), converted to a Core ML package; the manifest is the compress stage's kind.

Its own module, apart from the Core ML-side stage: the training code it imports is not part
of what a post-training compression job runs (the code fingerprint of rule compress).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..convert import ConversionSettings, convert_spec
from ..data import DataSelection
from ..io import write_json_atomic
from ..models import ModelSpec, load_model
from ..provenance import StageTimer
from ..schema_base import StrictModel
from ..train.loop import EpochCallback, train
from ..train.recipe import TrainingRecipe, job_fingerprint
from ..train.tasks import bind_task
from .registry import ALGORITHMS
from .stage import save_and_record
from .torch_side import TorchCompressionJob

log = logging.getLogger(__name__)


def compress_with_torch(
    *,
    params: StrictModel,
    recipe: TrainingRecipe | None,
    model: ModelSpec,
    evaluation: DataSelection,
    training: StrictModel | None,
    conversion: ConversionSettings,
    weights: Path,
    baseline_manifest: dict[str, Any],
    package: Path,
    manifest: Path,
    checkpoint_dir: Path,
    context: dict[str, Any],
    on_epoch_end: EpochCallback | None = None,
    progress: bool = True,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """Compress the fp32 checkpoint with one torch-side algorithm, convert, write the manifest.

    ``fingerprint`` (default: :func:`torch_job_fingerprint`) is what a checkpoint must carry to
    be resumed: only this exact job may resume (or, finished, re-save) from it.
    """
    import torch

    entry = ALGORITHMS[params.algorithm]  # type: ignore[attr-defined]
    if entry.compress_torch is None:
        raise ValueError(f"algorithm {params.algorithm!r} is not a torch-side algorithm")  # type: ignore[attr-defined]
    if entry.fine_tunes and recipe is None:
        raise ValueError(f"algorithm {params.algorithm!r} fine-tunes and needs a recipe")  # type: ignore[attr-defined]
    timer = StageTimer()
    with timer.section("load"):
        torch_model = load_model(model.architecture, weights, model.num_classes)
        example = torch.rand(*model.example_shape())
    if recipe is not None and fingerprint is None:
        fingerprint = torch_job_fingerprint(
            params=params, recipe=recipe, model=model, evaluation=evaluation,
            training=training, weights=weights,
        )  # fmt: skip
    with bind_task(model, training, evaluation) as task:

        def fine_tune(prepared: Any, step: Callable[[], None]) -> dict[str, Any]:
            assert recipe is not None
            return train(
                prepared,
                fingerprint=fingerprint,
                recipe=recipe,
                checkpoint_dir=checkpoint_dir,
                on_epoch_end=on_epoch_end,
                on_step=step,
                progress=progress,
                **task.loop_arguments(recipe),
            )

        job = TorchCompressionJob(
            params=params,
            model=torch_model,
            example=example,
            training_set=task.training_set,
            train=fine_tune,
        )
        log.info("applying %s %s (torch side)", params.algorithm, params.label())  # type: ignore[attr-defined]
        with timer.section("compress"):
            finalized = entry.compress_torch(job).cpu().eval()
            # The finalized torch model on the evaluation set: what training achieved, for
            # comparison with the Core ML artifact's accuracy in the evaluation stage.
            torch_accuracy = task.validate(finalized, "cpu")[task.metric]
    method = entry.conversion_method or conversion.method
    with timer.section("convert"):
        mlmodel = convert_spec(finalized, model, conversion, method)
    record = save_and_record(mlmodel, entry, params, package, baseline_manifest, context, timer)
    record.update(
        {
            "conversion_method": method,
            "recipe": recipe.model_dump(mode="json") if recipe is not None else None,
            "torch_accuracy": torch_accuracy,
            "torch_metric": task.metric,
            "history": job.training.get("history", []),
            "resumed_from_epoch": job.training.get("resumed_from_epoch"),
            "device": job.training.get("device", "cpu"),
            "training_fingerprint": fingerprint,
        }
    )
    write_json_atomic(manifest, record)
    return record


def torch_job_fingerprint(
    *,
    params: StrictModel,
    recipe: TrainingRecipe,
    model: ModelSpec,
    evaluation: DataSelection,
    training: StrictModel | None,
    weights: Path,
) -> str:
    """The fine-tuning job's identity: recipe, algorithm settings, model, data, weights."""
    return job_fingerprint(
        recipe,
        weights=weights,
        compression=params,
        model=model,
        evaluation={**asdict(evaluation), "source": evaluation.source.model_dump(mode="json")},
        training=training,
    )
