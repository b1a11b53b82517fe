"""Checks across sections (what one field means for another), and of the paths a run reads.

Each returns problem lines "<field path>: <what is wrong>"; the root schema and
``check_local_paths`` raise them all at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..convert import TARGET_RANK
from ..data import DATA_KINDS
from ..data.transforms import DETECTION_AUGMENTATIONS
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
        problems += task_checks(i, model, cfg)
    problems += duplicates("models", [m.id for m in cfg.models])
    problems += duplicates("experiments", [e.id for e in cfg.experiments])
    model_ids = {m.id for m in cfg.models}
    experiment_ids = {e.id for e in cfg.experiments}
    for i, row in enumerate(cfg.reference.rows):
        if row.model is not None and row.model not in model_ids:
            problems.append(f"reference.rows[{i}].model: unknown model id {row.model!r}")
        if row.experiment not in experiment_ids:
            problems.append(
                f"reference.rows[{i}].experiment: unknown experiment id {row.experiment!r}"
            )
    problems += _reference_collisions(cfg)
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
    problems += sensitivity_checks(cfg)
    return problems


def _per_tensor_setting(field: str, ref: str, cfg: WorkflowConfig) -> list[str]:
    """A per-layer measurement needs a Core ML-side setting that compresses each tensor on
    its own (then one compressed package holds every tensor as compressing it alone would)."""
    from ..compress.coreml_side import PER_TENSOR_ALGORITHMS

    known = {e.id: e for e in cfg.experiments}
    if ref not in known:
        return [f"{field}: unknown experiment id {ref!r} (known: {', '.join(sorted(known))})"]
    algorithm = known[ref].compression.algorithm
    if algorithm not in PER_TENSOR_ALGORITHMS:
        return [
            f"{field}: experiment {ref!r} uses {algorithm!r}; per-layer sensitivity measures "
            f"only per-tensor Core ML-side settings ({', '.join(PER_TENSOR_ALGORITHMS)})"
        ]
    return []


def sensitivity_checks(cfg: WorkflowConfig) -> list[str]:
    problems = []
    model_ids = {m.id for m in cfg.models}
    for j, ref in enumerate(cfg.sensitivity.experiments):
        problems += _per_tensor_setting(f"sensitivity.experiments[{j}]", ref, cfg)
    problems += duplicates("sensitivity.experiments", cfg.sensitivity.experiments)
    for j, ref in enumerate(cfg.sensitivity.models or []):
        if ref not in model_ids:
            problems.append(f"sensitivity.models[{j}]: unknown model id {ref!r}")
    known = {e.id: e for e in cfg.experiments}
    for i, exp in enumerate(cfg.experiments):
        if exp.compression.algorithm != "mixed_precision":
            continue
        where = f"experiments[{i}].compression"
        for j, ref in enumerate(exp.compression.candidates):
            found = _per_tensor_setting(f"{where}.candidates[{j}]", ref, cfg)
            problems += found
            if not found:
                problems += _covers(f"{where}.candidates[{j}]", known[ref], exp, cfg)
        ref = exp.compression.size_of
        if ref is not None:
            if ref not in known:
                problems.append(f"{where}.size_of: unknown experiment id {ref!r}")
            elif known[ref].algorithm().is_baseline or ref == exp.id:
                problems.append(f"{where}.size_of: {ref!r} is not another compressed experiment")
            else:
                problems += _covers(f"{where}.size_of", known[ref], exp, cfg)
    return problems


def _covers(field: str, needed: object, exp: object, cfg: WorkflowConfig) -> list[str]:
    """``needed`` (an experiment) must run on every model ``exp`` runs on."""
    missing = [
        m.id
        for m in cfg.models
        if exp.applies_to(m.id) and not needed.applies_to(m.id)  # type: ignore[attr-defined]
    ]
    if missing:
        return [
            f"{field}: experiment {needed.id!r} does not run on {missing}, "  # type: ignore[attr-defined]
            f"which experiment {exp.id!r} does"  # type: ignore[attr-defined]
        ]
    return []


def _trains(model: ModelConfig, cfg: WorkflowConfig) -> list[str]:
    """What trains this model or reads its training split: 'source' and experiment ids."""
    users = ["source"] if model.source.kind == "train" else []
    users += [
        e.id
        for e in cfg.experiments
        if e.applies_to(model.id) and getattr(e.compression, "needs_training_data", lambda: False)()
    ]
    return users


def _data_fits(where: str, data: object, model: ModelConfig, task: str) -> list[str]:
    """A data set of the model's task whose label space (where known) is the model's."""
    kind = DATA_KINDS[data.kind]  # type: ignore[attr-defined]
    if kind.task != task:
        wanted = detection_kinds() if task == "detection" else "a classification kind"
        return [
            f"{where}: kind {data.kind!r} is {kind.task} data but model {model.id!r} "  # type: ignore[attr-defined]
            f"({model.architecture}) is a {task} model; use {wanted}"
        ]
    classes = kind.num_classes(data)
    num_classes = model.num_classes or ARCHITECTURES[model.architecture].num_classes
    if classes is not None and classes != num_classes:
        return [
            f"{where}: kind {data.kind!r} has {classes} classes but model {model.id!r} "  # type: ignore[attr-defined]
            f"predicts num_classes={num_classes}"
        ]
    return []


def task_checks(i: int, model: ModelConfig, cfg: WorkflowConfig) -> list[str]:
    """Evaluation and training data of the model's task and classes; what a source allows."""
    problems = []
    task = ARCHITECTURES[model.architecture].task
    data = model.evaluation_data or cfg.data.evaluation
    where = f"models[{i}].evaluation_data" if model.evaluation_data else "data.evaluation"
    if task == "detection" and DATA_KINDS[data.kind].task != "detection":
        where = f"{where} (set models[{i}].evaluation_data)"
    problems += _data_fits(where, data, model, task)
    users = _trains(model, cfg)
    training = model.training_data or cfg.data.training
    if users and training is None:
        problems.append(
            f"models[{i}] ({model.id!r}): {users} need a training split: set "
            f"models[{i}].training_data or data.training"
        )
    if users and training is not None:
        where = (
            f"models[{i}].training_data"
            if model.training_data
            else f"data.training (models[{i}].training_data is not set)"
        )
        problems += _data_fits(where, training, model, task)
    trains = [
        e.id for e in cfg.experiments if e.algorithm().kind == "torch" and e.applies_to(model.id)
    ]
    if trains and model.source.kind == "coreml_package":
        problems.append(
            f"models[{i}] ({model.id!r}): torch-side experiments {trains} cannot run (a "
            "published Core ML package has no torch checkpoint); restrict them with "
            "experiments[].models"
        )
    if task == "detection":
        problems += _detection_recipes(i, model, cfg)
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


def _detection_recipes(i: int, model: ModelConfig, cfg: WorkflowConfig) -> list[str]:
    """A detector trains with its own loss: no classification crops, no logits to calibrate."""
    problems = []
    recipes = []
    if model.source.kind == "train":
        recipes.append((f"models[{i}].source.recipe", model.source.recipe))
    for j, exp in enumerate(cfg.experiments):
        if not exp.applies_to(model.id) or exp.algorithm().kind != "torch":
            continue
        if not exp.algorithm().fine_tunes and exp.compression.needs_training_data():
            problems.append(
                f"experiments[{j}].compression: {exp.compression.algorithm!r} calibrates with "
                f"a classification loss; model {model.id!r} is a detector (restrict it with "
                "experiments[].models)"
            )
        recipe = cfg.finetune_recipe(model.id, exp.id, 1)
        if recipe is not None:
            recipes.append(
                (
                    f"experiments[{j}] on {model.id!r}: the fine-tuning recipe (models[{i}]."
                    f"finetune, then experiments[{j}].compression.recipe, over the defaults)",
                    recipe,
                )
            )
    for where, recipe in recipes:
        augmentation = recipe["augmentation"] if isinstance(recipe, dict) else recipe.augmentation
        if augmentation not in DETECTION_AUGMENTATIONS:
            problems.append(
                f"{where}.augmentation: {augmentation!r} is for classifiers; a detector takes "
                f"one of {list(DETECTION_AUGMENTATIONS)}"
            )
    return problems


def _reference_collisions(cfg: WorkflowConfig) -> list[str]:
    """Two experiments of one model may not claim the same published row, nor one experiment
    two settings rows of the same kind."""
    problems = []
    for model in cfg.models:
        for exp in cfg.experiments:
            rows = cfg.reference.rows_for(model.id, exp.id)
            if sum(row.stands_for is not None for row in rows) > 1:
                problems.append(
                    f"reference.rows: experiment {exp.id!r} on model {model.id!r} stands for "
                    "more than one published row"
                )
    if problems or not cfg.reference.enabled:
        return problems
    try:
        params = cfg.reference_params()
    except ValueError as error:
        return [str(error)]
    seen: dict[tuple[str, str, str], str] = {}
    for entry in (params or {}).get("declared", []):
        key = (entry["model"], entry["config"], entry["workflow"])
        if key in seen:
            problems.append(
                f"reference: experiments {seen[key]!r} and {entry['experiment_id']!r} on model "
                f"{entry['model_id']!r} both reproduce the published row {key} (give one "
                "another label, or reference.rows[].stands_for)"
            )
        seen[key] = entry["experiment_id"]
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
    for i, m in enumerate(cfg.models):
        data_sets += [(f"models[{i}].evaluation_data", m.evaluation_data)]
        data_sets += [(f"models[{i}].training_data", m.training_data)]
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
