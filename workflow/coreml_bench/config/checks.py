"""Checks across sections (what one field means for another), and of the paths a run reads.

Each returns problem lines "<field path>: <what is wrong>"; the root schema and
``check_local_paths`` raise them all at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..convert import TARGET_RANK
from ..data import DATA_KINDS
from ..evaluate import EVALUATORS
from ..evaluate.registry import AUTO_ELSEWHERE, AUTO_ON_MACOS
from ..models import ARCHITECTURES
from ..registry import resolve_auto

if TYPE_CHECKING:
    from .models import ModelConfig
    from .schema import WorkflowConfig


def detection_kinds() -> list[str]:
    return sorted(name for name, kind in DATA_KINDS.items() if kind.task == "detection")


def evaluation_backend(cfg: WorkflowConfig) -> str:
    """The evaluation backend jobs on this host will use ('auto' resolved)."""

    return resolve_auto(cfg.evaluation.backend, on_macos=AUTO_ON_MACOS, elsewhere=AUTO_ELSEWHERE)


def cross_checks(cfg: WorkflowConfig) -> list[str]:
    problems = []
    for i, model in enumerate(cfg.models):
        if model.source.kind == "train" and cfg.data.training is None:
            problems.append(
                f"models[{i}].source: kind 'train' needs data.training (a training split)"
            )
    for i, exp in enumerate(cfg.experiments):
        needs_data = getattr(exp.compression, "needs_training_data", lambda: False)()
        if needs_data and cfg.data.training is None:
            problems.append(
                f"experiments[{i}].compression: {exp.compression.algorithm!r} needs "
                "data.training (training or calibration images)"
            )
    for i, model in enumerate(cfg.models):
        problems += task_checks(i, model, cfg)
    problems += duplicates("models", [m.id for m in cfg.models])
    problems += duplicates("experiments", [e.id for e in cfg.experiments])
    model_ids = {m.id for m in cfg.models}
    target = cfg.conversion.minimum_deployment_target
    for i, exp in enumerate(cfg.experiments):
        if exp.models is not None and not exp.models:
            problems.append(
                f"experiments[{i}].models: [] selects no model; leave it out to run on all models"
            )
        for j, ref in enumerate(exp.models or []):
            if ref not in model_ids:
                problems.append(
                    f"experiments[{i}].models[{j}]: unknown model id {ref!r} "
                    f"(known: {', '.join(sorted(model_ids))})"
                )
        needed = exp.compression.minimum_target()
        if TARGET_RANK[needed] > TARGET_RANK[target]:
            problems.append(
                f"experiments[{i}].compression: {exp.compression.label()!r} needs "
                f"minimum_deployment_target >= {needed}, but "
                f"conversion.minimum_deployment_target is {target!r}"
            )
    return problems


def task_checks(i: int, model: ModelConfig, cfg: WorkflowConfig) -> list[str]:
    """A detector needs detection data, a classifier must not get it; what a source allows."""
    problems = []
    task = ARCHITECTURES[model.architecture].task
    data = model.evaluation_data or cfg.data.evaluation
    where = f"models[{i}].evaluation_data" if model.evaluation_data else "data.evaluation"
    data_task = DATA_KINDS[data.kind].task
    if task == "detection" and data_task != "detection":
        problems.append(
            f"models[{i}] ({model.id!r}) is a detector: {where} must be one of kinds "
            f"{detection_kinds()}, got {data.kind!r} (set models[{i}].evaluation_data)"
        )
    if task != "detection" and data_task == "detection":
        problems.append(
            f"models[{i}] ({model.id!r}) is a classifier: {where} is detection data ({data.kind!r})"
        )
    trains = [
        e.id for e in cfg.experiments if e.algorithm().kind == "torch" and e.applies_to(model.id)
    ]
    if model.source.kind == "train" and task != "classification":
        problems.append(
            f"models[{i}].source: kind 'train' trains classifiers; {model.architecture!r} is "
            f"a {task} model"
        )
    if trains and (task != "classification" or model.source.kind == "coreml_package"):
        why = "a published Core ML package has no torch checkpoint"
        if task != "classification":
            why = f"the training loop is for classifiers, {model.architecture!r} is a {task} model"
        problems.append(
            f"models[{i}] ({model.id!r}): training-time experiments {trains} cannot run ({why}); "
            "restrict them with experiments[].models"
        )
    backend = cfg.evaluation.backend
    if (
        model.source.kind == "coreml_package"
        and backend in EVALUATORS
        and EVALUATORS[backend].needs_checkpoint
    ):
        problems.append(
            f"models[{i}].source: a published package has no checkpoint for evaluation.backend "
            f"{backend!r}; use 'mil-torch' or 'auto'"
        )
    return problems


def duplicates(field: str, ids: list[str]) -> list[str]:
    """Ids are folder names: two that differ only in case collide on macOS and Windows."""
    seen: dict[str, str] = {}
    problems = []
    for i, value in enumerate(ids):
        if value in seen.values():
            problems.append(f"{field}[{i}].id: duplicate id {value!r}")
        elif value.casefold() in seen:
            problems.append(
                f"{field}[{i}].id: {value!r} differs from id {seen[value.casefold()]!r} only in "
                "case; both would share one results folder on a case-insensitive file system"
            )
        seen.setdefault(value.casefold(), value)
    return problems


def local_path_problems(cfg: WorkflowConfig) -> list[str]:
    """Paths the run will read must exist before any job starts (not just when it gets there)."""
    problems = []
    data_sets = [("data.evaluation", cfg.data.evaluation), ("data.training", cfg.data.training)]
    data_sets += [
        (f"models[{i}].evaluation_data", m.evaluation_data)
        for i, m in enumerate(cfg.models)
        if m.evaluation_data is not None
    ]
    for where, data in data_sets:
        if data is None:
            continue
        for field, message in DATA_KINDS[data.kind].check(data):
            problems.append(f"  {where}.{field}: {message}")
    for i, model in enumerate(cfg.models):
        path = getattr(model.source, "path", None)
        if model.source.kind == "local" and path is not None and not path.is_file():
            what = "is a folder, not a checkpoint file" if path.is_dir() else "does not exist"
            problems.append(f"  models[{i}].source.path: file {str(path)!r} {what}")
    return problems
