"""The root of the config tree: every section composed, checked across, and what each rule's
params carry (plain JSON of exactly what its jobs read)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from ..convert import ConversionSettings
from ..evaluate import EVALUATORS
from ..evaluate.settings import EvaluationSettings
from ..profile import PROFILERS, Profiler
from ..profile.registry import AUTO_ELSEWHERE as PROFILE_ELSEWHERE
from ..profile.registry import AUTO_ON_MACOS as PROFILE_ON_MACOS
from ..profile.settings import ProfilingSettings
from ..registry import resolve_auto
from ..schema_base import Identifier, StrictModel
from ..sensitivity.settings import SensitivitySettings
from ..tracking.settings import TrackingSettings
from ..train.recipe import effective_recipe
from .checks import cross_checks, evaluation_backend
from .data import DataConfig
from .experiments import ExperimentConfig
from .models import ModelConfig
from .quickstart import quickstart_experiments, quickstart_models
from .reference import ReferenceSettings
from .resources import TrainingResources


class WorkflowConfig(StrictModel):
    """Root of the config tree."""

    study: Identifier = Field(default="quickstart", description="MLflow experiment name")
    models: list[ModelConfig] = Field(default_factory=quickstart_models, min_length=1)
    experiments: list[ExperimentConfig] = Field(
        default_factory=quickstart_experiments, min_length=1
    )
    data: DataConfig = DataConfig()
    conversion: ConversionSettings = ConversionSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    profiling: ProfilingSettings = ProfilingSettings()
    tracking: TrackingSettings = TrackingSettings()
    training_resources: TrainingResources = TrainingResources()
    reference: ReferenceSettings = ReferenceSettings()
    sensitivity: SensitivitySettings = SensitivitySettings()

    @model_validator(mode="after")
    def _cross_checks(self) -> WorkflowConfig:
        problems = cross_checks(self)
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    # ------------------------------------------------------------------------ lookups

    def model(self, model_id: str) -> ModelConfig:
        return next(m for m in self.models if m.id == model_id)

    def experiment(self, experiment_id: str) -> ExperimentConfig:
        return next(e for e in self.experiments if e.id == experiment_id)

    def variants(self) -> list[tuple[str, str, int]]:
        """Every (model, experiment, trial) job triple the config expands to."""
        return [
            (m.id, e.id, trial)
            for e in self.experiments
            for m in self.models
            if e.applies_to(m.id)
            for trial in range(1, e.effective_trials() + 1)
        ]

    def sensitivity_pairs(self) -> list[tuple[str, str]]:
        """(model, experiment) pairs measured one tensor at a time: sensitivity.experiments
        on sensitivity.models, and every mixed_precision search's candidates on its models."""
        pairs: dict[tuple[str, str], None] = {}
        for m in self.models:
            if self.sensitivity.applies_to(m.id):
                for e in self.sensitivity.experiments:
                    if self.experiment(e).applies_to(m.id):
                        pairs[(m.id, e)] = None
        for experiment in self.experiments:
            if experiment.compression.algorithm == "mixed_precision":
                for m in self.models:
                    if experiment.applies_to(m.id):
                        for e in experiment.compression.candidates:
                            pairs[(m.id, e)] = None
        return list(pairs)

    def calibration_params(self, model_id: str) -> dict[str, Any]:
        """The calibration split of one model's jobs: its evaluation data, seen as views."""
        return {
            **self.evaluation_params(model_id),
            "calibration": self.sensitivity.calibration.model_dump(mode="json"),
        }

    def evaluation_set(self, model_id: str) -> Any:
        """This model's evaluation set: its own, or data.evaluation."""
        return self.model(model_id).evaluation_data or self.data.evaluation

    def evaluation_needs_checkpoint(self) -> bool:
        """Whether evaluation jobs read the torch checkpoint (the evaluator says so)."""
        return EVALUATORS[evaluation_backend(self)].needs_checkpoint

    def evaluation_runs_program(self) -> bool:
        """Whether evaluation jobs run the program compiled beside the package."""
        return EVALUATORS[evaluation_backend(self)].runs_program

    def profiler(self) -> Profiler:
        """The profiler entry jobs on this host will use ('auto' resolved)."""
        return PROFILERS[
            resolve_auto(
                self.profiling.backend, on_macos=PROFILE_ON_MACOS, elsewhere=PROFILE_ELSEWHERE
            )
        ]

    # ---------------------------------------------- what rule params carry (plain JSON)

    def model_params(self, model_id: str) -> dict[str, Any]:
        return self.model(model_id).spec().model_dump(mode="json")

    def evaluation_params(self, model_id: str) -> dict[str, Any]:
        """The evaluation data a model's jobs read: the set, batch size, limit."""
        return {
            "evaluation": self.evaluation_set(model_id).model_dump(mode="json"),
            "batch_size": self.data.batch_size,
            "limit": self.data.limit,
        }

    def validation_params(self, model_id: str, recipe: dict[str, Any]) -> dict[str, Any]:
        """What a training job validates on: the evaluation set at the recipe's batch size
        and validation limit (not data.batch_size / data.limit: changing how the evaluation
        stage reads the set retrains nothing)."""
        return {
            "evaluation": self.evaluation_set(model_id).model_dump(mode="json"),
            "batch_size": recipe["batch_size"],
            "limit": recipe["validation_limit"],
        }

    def baseline_validation_params(self, model_id: str) -> dict[str, Any]:
        source = self.model(model_id).source
        return self.validation_params(model_id, source.recipe.model_dump(mode="json"))  # type: ignore[union-attr]

    def torch_job_data(self, model_id: str, experiment_id: str, trial: int) -> dict[str, Any]:
        """A torch-side job's data: validation settings when it fine-tunes; otherwise the
        evaluation settings its torch accuracy is measured with."""
        recipe = self.finetune_recipe(model_id, experiment_id, trial)
        if recipe is None:
            return self.evaluation_params(model_id)
        return self.validation_params(model_id, recipe)

    def training_set(self, model_id: str) -> Any:
        """This model's training split: its own, or data.training (None: it has none)."""
        return self.model(model_id).training_data or self.data.training

    def training_params(self, model_id: str) -> dict[str, Any] | None:
        training = self.training_set(model_id)
        return None if training is None else training.model_dump(mode="json")

    def finetune_recipe(self, model_id: str, experiment_id: str, trial: int) -> dict | None:
        """The effective fine-tuning recipe of one job as JSON, or None if it does not train."""
        experiment = self.experiment(experiment_id)
        if not experiment.algorithm().fine_tunes:
            return None
        compression = experiment.compression
        model = self.model(model_id)
        recipe = effective_recipe(
            model.finetune.model_dump(mode="json", exclude_unset=True) if model.finetune else None,
            compression.recipe.model_dump(mode="json", exclude_unset=True)
            if compression.recipe
            else None,
            trial,
        )
        return recipe.model_dump(mode="json")

    def reference_params(self) -> dict[str, Any] | None:
        """What the reference gate reads (plain JSON); None where no model of this config has
        published rows (or the gate is off)."""
        from ..reference import load_published

        settings = self.reference
        if not settings.enabled:
            return None
        try:
            published = load_published(settings.published_path())
        except (OSError, ValueError) as error:
            raise ValueError(f"reference.published: {error}") from None
        names = {row.model for row in published}
        models = sorted({m.effective_display_name() for m in self.models} & names)
        if not models:
            return None
        declared = []
        for model_id, experiment_id in dict.fromkeys((m, e) for m, e, _ in self.variants()):
            experiment = self.experiment(experiment_id)
            algorithm = experiment.algorithm()
            entry = {
                "model": self.model(model_id).effective_display_name(),
                "config": experiment.effective_label(),
                "workflow": "n/a" if algorithm.is_baseline else algorithm.workflow,
                "model_id": model_id,
                "experiment_id": experiment_id,
                "stands_for": None,
            }
            for row in settings.rows_for(model_id, experiment_id):
                if row.stands_for is not None:
                    entry.update(
                        config=row.stands_for.config,
                        workflow=row.stands_for.workflow,
                        stands_for=row.stands_for.why,
                    )
            declared.append(entry)
        return {
            "published": str(settings.published_path()),
            "models": models,
            "declared": declared,
            "weights": {m.id: m.source.kind for m in self.models},
            "default": {
                "ratio": settings.ratio_tolerance,
                "accuracy_pp": settings.accuracy_tolerance_pp,
            },
            "rows": [
                {**row.model_dump(mode="json"), "model": model_id}
                for row in settings.rows
                for model_id in ([row.model] if row.model else [m.id for m in self.models])
            ],
        }

    def table_rows(self) -> list[dict[str, Any]]:
        """Row order and labels for the tables: config order, one entry per variant."""
        rows = []
        for m, e, t in self.variants():
            experiment = self.experiment(e)
            rows.append(
                {
                    "model": m,
                    "model_name": self.model(m).effective_display_name(),
                    "experiment": e,
                    "trial": t,
                    "config_label": experiment.effective_label(),
                    "algorithm": experiment.compression.algorithm,
                }
            )
        return rows
