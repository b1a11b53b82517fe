"""Torch-side algorithms: training-time and calibration compression with
``coremltools.optimize.torch``, one registry entry each (parameters + compressor).

Each entry starts from the fp32 torch checkpoint, compresses (fine-tuning with the shared
training loop where the algorithm trains), finalizes, and is converted to a Core ML package
whose compressed ops (``constexpr_lut_to_dense``, ``constexpr_sparse_to_dense``,
``constexpr_blockwise_shift_scale``, activation ``quantize``/``dequantize``) the manifest lists.

Parameters are validated twice before any job runs: by the pydantic models below (field names
and ranges) and by coremltools itself (``<Algorithm>Config.from_dict`` / ``from_yaml``), so a
user can drop in the YAML file that produced a published row and a file coremltools rejects
stops the workflow with the field named. The second check imports coremltools' torch side
(seconds): ``coreml-bench check-config`` runs it in-process, the Snakefile in rule
``check_torch_settings`` before any torch-side job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, model_validator

from ..models import weight_module_types
from ..models.sources import UNPINNED, DownloadUrl
from ..schema_base import Sha256, StrictModel
from ..train.recipe import TrainingRecipe
from .common import (
    MAX_CHANNEL_BLOCK,
    check_block_size,
    check_group_size,
    check_sparsity_or_n_m,
    linear_quantization_label,
    linear_quantization_target,
    sparsity_label,
)
from .registry import ALGORITHMS, Algorithm

if TYPE_CHECKING:
    import torch

Granularity = Literal["per_tensor", "per_grouped_channel"]
# Validation-context key: False skips coremltools' own check of torch-side settings.
COREMLTOOLS_CHECK = "check_with_coremltools"


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name longer than the file system allows
        return False


class PublishedConfigFile(StrictModel):
    """A coremltools YAML config by URL, as Apple links one behind each training-time row.

    Rule ``download_compression_config`` fetches it once into results/configs/, checks the
    sha256 and records where it came from; the torch-side jobs then read that copy.
    """

    url: DownloadUrl
    sha256: Sha256 | None = Field(default=None, description=f"sha256 of the file; {UNPINNED}")


class TorchParams(StrictModel):
    """Shared by every torch-side algorithm: a coremltools YAML file may replace the fields."""

    config_yaml: Path | PublishedConfigFile | None = Field(
        default=None,
        description="coremltools' own YAML config for this algorithm (<Algorithm>Config."
        "from_yaml), a path or {url, sha256}; when set, it replaces the algorithm fields of "
        "this entry",
    )

    # The coremltools config class, "module.Name" (imported only when used).
    config_class_path: ClassVar[str] = ""

    def coremltools_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def config_class(self) -> Any:
        import importlib

        module, name = self.config_class_path.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)

    def coremltools_config(self) -> Any:
        """The coremltools config object, validated by coremltools itself."""
        cls = self.config_class()
        if isinstance(self.config_yaml, PublishedConfigFile):
            raise ValueError(
                f"config_yaml {self.config_yaml.url} is read from its downloaded copy "
                "(rule download_compression_config); use with_config_file(path)"
            )
        if self.config_yaml is not None:
            return cls.from_yaml(str(self.config_yaml))
        return cls.from_dict(self.coremltools_dict())

    def with_config_file(self, path: Path) -> TorchParams:
        """These settings reading the downloaded copy of a published config file."""
        return self.model_copy(update={"config_yaml": Path(path)})

    @model_validator(mode="after")
    def _coremltools_accepts_it(self, info: ValidationInfo) -> TorchParams:
        if isinstance(self.config_yaml, PublishedConfigFile):
            return self  # checked by rule check_torch_settings, once downloaded
        if self.config_yaml is not None and not _is_file(self.config_yaml):
            raise ValueError(f"config_yaml {str(self.config_yaml)[:200]!r} is not a file")
        if not (info.context or {}).get(COREMLTOOLS_CHECK, True):
            # The Snakefile's parse skips this (importing coremltools.optimize.torch costs
            # seconds); rule check_torch_settings runs it before any torch-side job.
            return self
        try:
            self.coremltools_config()
        except Exception as error:  # attrs/cattrs/yaml raise many types; all mean "rejected"
            source = f"config_yaml {str(self.config_yaml)!r}" if self.config_yaml else "it"
            detail = " ".join(str(error).split())[:500]
            raise ValueError(
                f"coremltools' {self.config_class_path.rsplit('.', 1)[1]} rejects {source}: "
                f"{type(error).__name__}: {detail}"
            ) from None
        return self

    def minimum_target(self) -> str:
        return "iOS16"

    def needs_training_data(self) -> bool:
        return False


class Finetuned(TorchParams):
    recipe: TrainingRecipe | None = Field(
        default=None,
        description="fine-tuning recipe; fields set here override the model's finetune recipe",
    )

    def needs_training_data(self) -> bool:
        return True


class Palettization(TorchParams):
    """The palettization fields every torch-side palettizer shares."""

    n_bits: Literal[1, 2, 3, 4, 6, 8] = 4
    granularity: Granularity = "per_tensor"
    group_size: int | None = Field(default=None, gt=0, le=MAX_CHANNEL_BLOCK)

    @model_validator(mode="after")
    def _group_size_matches_granularity(self) -> Palettization:
        check_group_size(self.granularity, self.group_size)
        return self

    def palettization_config(self) -> dict[str, Any]:
        """These fields as a coremltools ``Module...PalettizerConfig`` dict."""
        config: dict[str, Any] = {"n_bits": self.n_bits, "granularity": self.granularity}
        if self.group_size is not None:
            config["group_size"] = self.group_size
        return config

    def label(self) -> str:
        suffix = f", group {self.group_size}" if self.granularity == "per_grouped_channel" else ""
        return f"{self.n_bits} bit{suffix}"


class PalettizeDKM(Finetuned, Palettization):
    """Differentiable k-means palettization during fine-tuning (``DKMPalettizer``)."""

    algorithm: Literal["palettize_dkm"] = "palettize_dkm"
    n_bits: Literal[1, 2, 3, 4, 6, 8] = 2
    weight_threshold: int = Field(default=2048, ge=0)
    milestone: int = Field(default=0, ge=0, description="step at which palettization starts")
    module_overrides: dict[str, dict[str, Any] | None] = Field(
        default_factory=dict,
        description="module name -> ModuleDKMPalettizerConfig fields (null: leave it dense)",
    )
    config_class_path = "coremltools.optimize.torch.palettization.DKMPalettizerConfig"

    def coremltools_dict(self) -> dict[str, Any]:
        global_config = {
            **self.palettization_config(),
            "weight_threshold": self.weight_threshold,
            "milestone": self.milestone,
        }
        return {"global_config": global_config, "module_name_configs": self.module_overrides}


class PalettizeSKM(Palettization):
    """Sensitive k-means: Fisher-weighted k-means from calibration data (``SKMPalettizer``)."""

    algorithm: Literal["palettize_skm"] = "palettize_skm"
    num_calibration_samples: int = Field(default=128, gt=0, description="the seeds use 128")
    loss: Literal["cross_entropy", "kl_divergence"] = Field(
        default="cross_entropy",
        description="sensitivity loss: cross entropy against the labels, or KL divergence "
        "against the uncompressed model's own predictions (needs no labels)",
    )
    calibration_seed: int = Field(default=0, ge=0, description="which training images calibrate")
    config_class_path = "coremltools.optimize.torch.palettization.SKMPalettizerConfig"

    def coremltools_dict(self) -> dict[str, Any]:
        return {
            "global_config": self.palettization_config(),
            "calibration_nsamples": self.num_calibration_samples,
        }

    def needs_training_data(self) -> bool:
        return True


class PalettizeTorchPostTraining(Palettization):
    """Data-free k-means on the torch model (``PostTrainingPalettizer``)."""

    algorithm: Literal["palettize_torch_post_training"] = "palettize_torch_post_training"
    config_class_path = "coremltools.optimize.torch.palettization.PostTrainingPalettizerConfig"

    def coremltools_dict(self) -> dict[str, Any]:
        return {"global_config": self.palettization_config()}

    def label(self) -> str:
        return f"{super().label()} (torch)"


class QuantizeTorchPostTraining(TorchParams):
    """Weight-only linear quantization on the torch model (``PostTrainingQuantizer``)."""

    algorithm: Literal["quantize_torch_post_training"] = "quantize_torch_post_training"
    weight_dtype: Literal["int8", "uint8", "int4", "uint4"] = "int8"
    granularity: Literal["per_tensor", "per_channel", "per_block"] = "per_channel"
    block_size: int | None = Field(default=None, gt=0, le=MAX_CHANNEL_BLOCK)
    quantization_scheme: Literal["symmetric", "affine"] = "symmetric"
    config_class_path = "coremltools.optimize.torch.quantization.PostTrainingQuantizerConfig"

    @model_validator(mode="after")
    def _block_size_matches_granularity(self) -> QuantizeTorchPostTraining:
        check_block_size(self.granularity, self.block_size)
        return self

    def coremltools_dict(self) -> dict[str, Any]:
        global_config: dict[str, Any] = {
            "weight_dtype": self.weight_dtype,
            "granularity": self.granularity,
            "quantization_scheme": self.quantization_scheme,
        }
        if self.block_size is not None:
            global_config["block_size"] = self.block_size
        return {"global_config": global_config}

    def label(self) -> str:
        label = linear_quantization_label(self.weight_dtype, self.granularity, self.block_size)
        return f"{label} (torch)"

    def minimum_target(self) -> str:
        return linear_quantization_target(self.weight_dtype, self.granularity)


class PruneMagnitudeTraining(Finetuned):
    """Magnitude pruning on a schedule during fine-tuning (``MagnitudePruner``)."""

    algorithm: Literal["prune_magnitude_training"] = "prune_magnitude_training"
    target_sparsity: float | None = Field(default=0.5, gt=0.0, lt=1.0)
    n_m: tuple[int, int] | None = Field(default=None, description="n:m sparsity instead")
    block_size: int = Field(
        default=1, ge=1, le=MAX_CHANNEL_BLOCK, description="prune blocks of this many weights"
    )
    weight_threshold: int = Field(default=2048, ge=0, description="smaller weights stay dense")
    begin_step: int = Field(default=0, ge=0, description="polynomial schedule: first step")
    end_step: int = Field(default=100, gt=0, description="polynomial schedule: target reached")
    update_frequency: int = Field(default=10, gt=0, description="steps between sparsity updates")
    config_class_path = "coremltools.optimize.torch.pruning.MagnitudePrunerConfig"

    @model_validator(mode="before")
    @classmethod
    def _n_m_replaces_sparsity(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("n_m") is not None:
            data = {"target_sparsity": None, **data}
        return data

    @model_validator(mode="after")
    def _schedule_in_order(self) -> PruneMagnitudeTraining:
        check_sparsity_or_n_m(self.target_sparsity, self.n_m)
        if self.end_step <= self.begin_step:
            raise ValueError(f"end_step={self.end_step} must be > begin_step={self.begin_step}")
        return self

    def coremltools_dict(self) -> dict[str, Any]:
        update_steps = list(range(self.begin_step, self.end_step + 1, self.update_frequency))
        global_config: dict[str, Any] = {
            "scheduler": {"update_steps": update_steps},
            "block_size": self.block_size,
        }
        if self.n_m is not None:
            global_config["n_m_ratio"] = list(self.n_m)
            global_config["target_sparsity"] = self.n_m[0] / self.n_m[1]
        else:
            global_config["target_sparsity"] = self.target_sparsity
        # MagnitudePrunerConfig has no weight threshold; small modules are left out by name
        # at prepare time (see _skip_small_modules).
        return {"global_config": global_config}

    def label(self) -> str:
        return sparsity_label(self.target_sparsity, self.n_m)


class QuantizeQAT(Finetuned):
    """Quantization-aware training, W8A8 (``LinearQuantizer``): weights and activations."""

    algorithm: Literal["quantize_qat"] = "quantize_qat"
    quantization_scheme: Literal["symmetric", "affine"] = "symmetric"
    weight_per_channel: bool = True
    milestones: tuple[int, int, int, int] = Field(
        default=(0, 0, 100, 100),
        description="steps at which to enable observers, enable fake quantization, "
        "disable observers, freeze BatchNorm statistics",
    )
    config_class_path = "coremltools.optimize.torch.quantization.LinearQuantizerConfig"

    def coremltools_dict(self) -> dict[str, Any]:
        return {
            "global_config": {
                "quantization_scheme": self.quantization_scheme,
                "weight_dtype": "qint8",
                "activation_dtype": "quint8",
                "weight_per_channel": self.weight_per_channel,
                "milestones": list(self.milestones),
            }
        }

    def label(self) -> str:
        return "W8A8"

    def minimum_target(self) -> str:
        return "iOS17"  # activation quantize/dequantize ops


# ---------------------------------------------------------------------------- compressors


@dataclass
class TorchCompressionJob:
    """What a torch-side compressor works on; it returns the finalized torch model.

    ``training_set(recipe)`` builds the training split with that recipe's augmentation (or
    raises where the config has none); ``train(model, step)`` runs the shared fine-tuning loop
    with the job's recipe and checkpoints, calling ``step`` after every optimizer step, and
    records its history in ``training``.
    """

    params: Any
    model: torch.nn.Module
    example: torch.Tensor
    training_set: Callable[[TrainingRecipe], Any]
    train: Callable[[torch.nn.Module, Callable[[], None]], dict[str, Any]]
    training: dict[str, Any] = field(default_factory=dict)


def _skip_small_modules(config: Any, model: Any, threshold: int) -> Any:
    """MagnitudePrunerConfig has no weight_threshold: leave small modules out by name."""

    for name, module in model.named_modules():
        small = isinstance(module, weight_module_types()) and module.weight.numel() <= threshold
        if small and name not in config.module_name_configs:
            config.set_module_name(name, None)
    return config


def _fine_tune(prepare: Callable[[Any, Any, Any], tuple[Any, Any]]) -> Callable[[Any], Any]:
    """A compressor that fine-tunes: ``prepare(params, model, example)`` gives (compressor,
    prepared model); the shared loop trains it; the compressor finalizes it."""

    def compress(job: TorchCompressionJob) -> Any:
        job.model.train()
        compressor, prepared = prepare(job.params, job.model, job.example)
        job.training.update(job.train(prepared, compressor.step))
        return compressor.finalize(prepared.cpu().eval())

    return compress


def _prepare_dkm(params: PalettizeDKM, model: Any, example: Any) -> tuple[Any, Any]:
    from coremltools.optimize.torch.palettization import DKMPalettizer

    compressor = DKMPalettizer(model, params.coremltools_config())
    return compressor, compressor.prepare()


def _prepare_magnitude_pruner(
    params: PruneMagnitudeTraining, model: Any, example: Any
) -> tuple[Any, Any]:
    from coremltools.optimize.torch.pruning import MagnitudePruner

    config = params.coremltools_config()
    if params.config_yaml is None:
        config = _skip_small_modules(config, model, params.weight_threshold)
    compressor = MagnitudePruner(model, config)
    return compressor, compressor.prepare()


def _prepare_linear_quantizer(params: QuantizeQAT, model: Any, example: Any) -> tuple[Any, Any]:
    from coremltools.optimize.torch.quantization import LinearQuantizer

    compressor = LinearQuantizer(model, params.coremltools_config())
    return compressor, compressor.prepare(example_inputs=(example,))


def _calibration_loader(train_set: Any, params: PalettizeSKM) -> list[tuple[Any, Any]]:
    """``num_calibration_samples`` training images, one per batch, chosen by a seed."""
    import torch

    generator = torch.Generator().manual_seed(params.calibration_seed)
    count = min(params.num_calibration_samples, len(train_set))
    indices = torch.randperm(len(train_set), generator=generator)[:count].tolist()
    samples = []
    for index in indices:
        image, label = train_set[index]
        samples.append((image[None], torch.tensor([label])))
    return samples


def _compress_skm(job: TorchCompressionJob) -> Any:
    import copy

    import torch
    from coremltools.optimize.torch.palettization import SKMPalettizer

    params: PalettizeSKM = job.params
    model = job.model.eval()
    reference = copy.deepcopy(model).eval()

    def loss_fn(net: Any, batch: tuple[Any, Any]) -> Any:
        images, labels = batch
        logits = net(images)
        if params.loss == "cross_entropy":
            return torch.nn.functional.cross_entropy(logits, labels)
        with torch.no_grad():
            target = torch.nn.functional.softmax(reference(images), dim=1)
        return torch.nn.functional.kl_div(
            torch.nn.functional.log_softmax(logits, dim=1), target, reduction="batchmean"
        )

    # Calibration images without augmentation: the sensitivities of the model as used.
    train_set = job.training_set(TrainingRecipe(augmentation="none"))
    compressor = SKMPalettizer(model, params.coremltools_config())
    return compressor.compress(dataloader=_calibration_loader(train_set, params), loss_fn=loss_fn)


def _compress_post_training_palettizer(job: TorchCompressionJob) -> Any:
    from coremltools.optimize.torch.palettization import PostTrainingPalettizer

    return PostTrainingPalettizer(job.model.eval(), job.params.coremltools_config()).compress()


def _compress_post_training_quantizer(job: TorchCompressionJob) -> Any:
    from coremltools.optimize.torch.quantization import PostTrainingQuantizer

    return PostTrainingQuantizer(job.model.eval(), job.params.coremltools_config()).compress()


# ------------------------------------------------------------------------------- registry

ALGORITHMS.add(
    "palettize_dkm",
    Algorithm(
        PalettizeDKM,
        "Differentiable K-Means",
        "Training Time",
        kind="torch",
        marker="P",
        compress_torch=_fine_tune(_prepare_dkm),
    ),
)
ALGORITHMS.add(
    "palettize_skm",
    Algorithm(
        PalettizeSKM,
        "Sensitive K-Means",
        "Calibration",
        kind="torch",
        marker="X",
        compress_torch=_compress_skm,
    ),
)
ALGORITHMS.add(
    "palettize_torch_post_training",
    Algorithm(
        PalettizeTorchPostTraining,
        "K-Means",
        "Post Training",
        kind="torch",
        marker="h",
        compress_torch=_compress_post_training_palettizer,
    ),
)
ALGORITHMS.add(
    "quantize_torch_post_training",
    Algorithm(
        QuantizeTorchPostTraining,
        "Linear Quantization",
        "Post Training",
        kind="torch",
        marker="d",
        compress_torch=_compress_post_training_quantizer,
    ),
)
ALGORITHMS.add(
    "prune_magnitude_training",
    Algorithm(
        PruneMagnitudeTraining,
        "Magnitude Pruning",
        "Training Time",
        kind="torch",
        marker="v",
        compress_torch=_fine_tune(_prepare_magnitude_pruner),
    ),
)
ALGORITHMS.add(
    "quantize_qat",
    Algorithm(
        QuantizeQAT,
        "Linear Quantization (W8A8)",
        "Training Time",
        kind="torch",
        marker="p",
        compress_torch=_fine_tune(_prepare_linear_quantizer),
        # torch.export cannot trace quantized tensors (activation quantization): trace those.
        conversion_method="trace",
    ),
)
