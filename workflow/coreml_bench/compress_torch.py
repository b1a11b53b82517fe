"""Stage 3b: training-time and calibration compression with ``coremltools.optimize.torch``.

Each algorithm here is an entry in the same registry as the Core ML-side post-training
algorithms (``compress.ALGORITHMS``), with ``kind="torch"``: it starts from the fp32 torch
checkpoint, compresses (fine-tuning with the shared training loop where the algorithm trains),
finalizes, and converts the result to a Core ML package whose compressed ops
(``constexpr_lut_to_dense``, ``constexpr_sparse_to_dense``, ``constexpr_blockwise_shift_scale``,
activation ``quantize``/``dequantize``) the manifest lists.

Parameters are validated twice before any job runs: by the pydantic models below (field names
and ranges) and by coremltools itself (``<Algorithm>Config.from_dict`` / ``from_yaml``), so a
user can drop in the YAML file that produced a published row and a file coremltools rejects
stops the workflow with the field named.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from .compress import (
    ALGORITHMS,
    Algorithm,
    check_block_size,
    check_group_size,
    check_sparsity_or_n_m,
    compression_record,
    linear_quantization_label,
    linear_quantization_target,
    sparsity_label,
)
from .schema_base import StrictModel
from .train import TrainingRecipe

log = logging.getLogger(__name__)

Granularity = Literal["per_tensor", "per_grouped_channel"]


class _TorchParams(StrictModel):
    """Shared by every torch-side algorithm: a coremltools YAML file may replace the fields."""

    config_yaml: Path | None = Field(
        default=None,
        description="coremltools' own YAML config for this algorithm (<Algorithm>Config."
        "from_yaml); when set, it replaces the algorithm fields of this entry",
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
        if self.config_yaml is not None:
            return cls.from_yaml(str(self.config_yaml))
        return cls.from_dict(self.coremltools_dict())

    @model_validator(mode="after")
    def _coremltools_accepts_it(self) -> _TorchParams:
        if self.config_yaml is not None and not self.config_yaml.is_file():
            raise ValueError(f"config_yaml {str(self.config_yaml)!r} is not a file")
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


class _Finetuned(_TorchParams):
    recipe: TrainingRecipe | None = Field(
        default=None,
        description="fine-tuning recipe; fields set here override the model's finetune recipe",
    )

    def needs_training_data(self) -> bool:
        return True


class _Palettization(_TorchParams):
    """The palettization fields every torch-side palettizer shares."""

    n_bits: Literal[1, 2, 3, 4, 6, 8] = 4
    granularity: Granularity = "per_tensor"
    group_size: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _group_size_matches_granularity(self) -> _Palettization:
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


class PalettizeDKM(_Finetuned, _Palettization):
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


class PalettizeSKM(_Palettization):
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


class PalettizeTorchPostTraining(_Palettization):
    """Data-free k-means on the torch model (``PostTrainingPalettizer``)."""

    algorithm: Literal["palettize_torch_post_training"] = "palettize_torch_post_training"
    config_class_path = "coremltools.optimize.torch.palettization.PostTrainingPalettizerConfig"

    def coremltools_dict(self) -> dict[str, Any]:
        return {"global_config": self.palettization_config()}

    def label(self) -> str:
        return f"{super().label()} (torch)"


class QuantizeTorchPostTraining(_TorchParams):
    """Weight-only linear quantization on the torch model (``PostTrainingQuantizer``)."""

    algorithm: Literal["quantize_torch_post_training"] = "quantize_torch_post_training"
    weight_dtype: Literal["int8", "uint8", "int4", "uint4"] = "int8"
    granularity: Literal["per_tensor", "per_channel", "per_block"] = "per_channel"
    block_size: int | None = Field(default=None, gt=0)
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


class PruneMagnitudeTraining(_Finetuned):
    """Magnitude pruning on a schedule during fine-tuning (``MagnitudePruner``)."""

    algorithm: Literal["prune_magnitude_training"] = "prune_magnitude_training"
    target_sparsity: float | None = Field(default=0.5, gt=0.0, lt=1.0)
    n_m: tuple[int, int] | None = Field(default=None, description="n:m sparsity instead")
    block_size: int = Field(default=1, ge=1, description="prune blocks of this many weights")
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


class QuantizeQAT(_Finetuned):
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


def _skip_small_modules(config: Any, model: Any, threshold: int) -> Any:
    """MagnitudePrunerConfig has no weight_threshold: leave small modules out by name."""
    from .weights_roundtrip import _weight_kinds

    for name, module in model.named_modules():
        small = isinstance(module, _weight_kinds()) and module.weight.numel() <= threshold
        if small and name not in config.module_name_configs:
            config.set_module_name(name, None)
    return config


def _training_compressor(params: Any, model: Any, example: Any) -> tuple[Any, Any]:
    """(compressor, prepared model) for the algorithms that fine-tune."""
    from coremltools.optimize.torch.palettization import DKMPalettizer
    from coremltools.optimize.torch.pruning import MagnitudePruner
    from coremltools.optimize.torch.quantization import LinearQuantizer

    config = params.coremltools_config()
    if isinstance(params, PalettizeDKM):
        compressor = DKMPalettizer(model, config)
        return compressor, compressor.prepare()
    if isinstance(params, PruneMagnitudeTraining):
        if params.config_yaml is None:
            config = _skip_small_modules(config, model, params.weight_threshold)
        compressor = MagnitudePruner(model, config)
        return compressor, compressor.prepare()
    if isinstance(params, QuantizeQAT):
        compressor = LinearQuantizer(model, config)
        return compressor, compressor.prepare(example_inputs=(example,))
    raise TypeError(f"{type(params).__name__} does not fine-tune")


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


def _skm(params: PalettizeSKM, model: Any, train_set: Any) -> Any:
    import copy

    import torch
    from coremltools.optimize.torch.palettization import SKMPalettizer

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

    compressor = SKMPalettizer(model, params.coremltools_config())
    return compressor.compress(dataloader=_calibration_loader(train_set, params), loss_fn=loss_fn)


def _post_training(params: Any, model: Any) -> Any:
    from coremltools.optimize.torch.palettization import PostTrainingPalettizer
    from coremltools.optimize.torch.quantization import PostTrainingQuantizer

    config = params.coremltools_config()
    if isinstance(params, PalettizeTorchPostTraining):
        return PostTrainingPalettizer(model, config).compress()
    return PostTrainingQuantizer(model, config).compress()


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


def compress_with_torch(
    *,
    compression: dict[str, Any],
    recipe: dict[str, Any] | None,
    model_cfg: dict[str, Any],
    data_cfg: dict[str, Any],
    conversion_cfg: dict[str, Any],
    weights: Path,
    baseline_manifest: dict[str, Any],
    package: Path,
    manifest: Path,
    checkpoint_dir: Path,
    context: dict[str, Any],
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    record_extra: Callable[[], dict[str, Any]] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Compress the fp32 checkpoint with one torch-side algorithm, convert, write the manifest.

    ``record_extra`` is called once the work is done; its entries join the manifest (e.g. the
    MLflow run that streamed the epochs, known only after the first epoch).
    """
    import torch

    from .convert import example_shape, to_coreml
    from .data import evaluation_loader
    from .manifest import StageTimer, write_json_atomic
    from .mlpackage import save_atomic
    from .models import load_model
    from .train import evaluate_top1, train, training_dataset

    entry = ALGORITHMS[compression["algorithm"]]
    params = entry.params.model_validate(compression)
    timer = StageTimer()
    training: dict[str, Any] = {}
    with timer.section("load"):
        model = load_model(model_cfg["architecture"], weights, model_cfg["num_classes"])
        example = torch.rand(*example_shape(model_cfg))
        eval_loader = evaluation_loader(data_cfg, model_cfg["preprocessing"])
    log.info("applying %s %s (torch side)", compression["algorithm"], params.label())
    with timer.section("compress"):
        if isinstance(params, _Finetuned):
            assert recipe is not None, "fine-tuning algorithms get an effective recipe"
            run_recipe = TrainingRecipe.model_validate(recipe)
            train_set = training_dataset(data_cfg, model_cfg["preprocessing"], run_recipe)
            model.train()
            compressor, prepared = _training_compressor(params, model, example)
            training = train(
                prepared,
                recipe=run_recipe,
                train_set=train_set,
                eval_loader=eval_loader,
                checkpoint_dir=checkpoint_dir,
                on_epoch_end=on_epoch_end,
                on_step=compressor.step,
                progress=progress,
            )
            finalized = compressor.finalize(prepared.cpu().eval())
        elif isinstance(params, PalettizeSKM):
            # Calibration images without augmentation: the sensitivities of the model as used.
            calibration = TrainingRecipe(augmentation="none")
            train_set = training_dataset(data_cfg, model_cfg["preprocessing"], calibration)
            finalized = _skm(params, model.eval(), train_set)
        else:
            finalized = _post_training(params, model.eval())
        finalized = finalized.cpu().eval()
        torch_top1 = evaluate_top1(finalized, eval_loader, "cpu")
    # torch.export cannot trace quantized tensors (activation quantization): trace those.
    method = "trace" if isinstance(params, QuantizeQAT) else conversion_cfg["method"]
    with timer.section("convert"):
        mlmodel = to_coreml(
            finalized,
            model_cfg["input_size"],
            in_channels=model_cfg["in_channels"],
            minimum_deployment_target=conversion_cfg["minimum_deployment_target"],
            method=method,
        )
    with timer.section("save"):
        save_atomic(mlmodel, package)
    record = compression_record(
        entry=entry,
        params=params,
        compression=compression,
        package=package,
        baseline_manifest=baseline_manifest,
        context=context,
        timer=timer,
    )
    record.update(
        {
            "conversion_method": method,
            "recipe": recipe,
            # The finalized torch model on the evaluation set: what training achieved, for
            # comparison with the Core ML artifact's accuracy in the evaluation stage.
            "torch_top1": torch_top1,
            "history": training.get("history", []),
            "resumed_from_epoch": training.get("resumed_from_epoch"),
            "device": training.get("device", "cpu"),
            **(record_extra() if record_extra is not None else {}),
        }
    )
    write_json_atomic(manifest, record)
    return record


def _register() -> None:
    entries = [
        ("palettize_dkm", PalettizeDKM, "Differentiable K-Means", "Training Time"),
        ("palettize_skm", PalettizeSKM, "Sensitive K-Means", "Calibration"),
        ("palettize_torch_post_training", PalettizeTorchPostTraining, "K-Means", "Post Training"),
        (
            "quantize_torch_post_training",
            QuantizeTorchPostTraining,
            "Linear Quantization",
            "Post Training",
        ),
        ("prune_magnitude_training", PruneMagnitudeTraining, "Magnitude Pruning", "Training Time"),
        ("quantize_qat", QuantizeQAT, "Linear Quantization (W8A8)", "Training Time"),
    ]
    for name, params, display, workflow in entries:
        ALGORITHMS.add(name, Algorithm(params, None, display, workflow, kind="torch"))


_register()
