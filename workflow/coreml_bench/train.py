"""Training: the recipe (validated config) and a resumable training loop.

The loop follows the torchvision classification reference recipe (SGD or AdamW, a main LR
schedule after a linear warm-up, label smoothing, standard augmentations) and is what the
fp32 baseline of a ``train`` model source runs; training-time compression reuses it.

Reproducibility: every epoch starts from RNG state derived from (seed, epoch), so a run
resumed from the checkpoint of epoch k gives the same weights as one that never stopped.
torch is imported inside functions: the Snakefile imports this module through the config.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from .schema_base import StrictModel

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"


class TrainingRecipe(StrictModel):
    """Hyper-parameters of one training run (torchvision classification reference names)."""

    epochs: int = Field(default=5, ge=1)
    batch_size: int = Field(default=128, gt=0)
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
    augmentation: Literal["none", "pad_crop_flip", "random_resized_crop_flip"] = "pad_crop_flip"
    train_limit: int | None = Field(default=None, gt=0, description="train on the first N images")
    max_steps_per_epoch: int | None = Field(default=None, gt=0)
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


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


def train_transform(preprocessing: dict[str, Any], augmentation: str) -> Any:
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import v2 as transforms

    crop = preprocessing["crop_size"]
    interpolation = InterpolationMode(preprocessing["interpolation"])
    steps: list[Any] = [transforms.ToImage()]
    if augmentation == "random_resized_crop_flip":
        steps += [
            transforms.RandomResizedCrop(crop, interpolation=interpolation, antialias=True),
            transforms.RandomHorizontalFlip(),
        ]
    else:
        steps += [
            transforms.Resize(preprocessing["resize"], interpolation=interpolation, antialias=True),
            transforms.CenterCrop(crop),
        ]
        if augmentation == "pad_crop_flip":
            # The small-image recipe (CIFAR / Fashion-MNIST): shift by up to 1/8 of the side.
            steps += [transforms.RandomCrop(crop, padding=max(1, crop // 8))]
            steps += [transforms.RandomHorizontalFlip()]
    steps += [
        transforms.ToDtype(torch.float32, scale=True),
        transforms.Normalize(list(preprocessing["mean"]), list(preprocessing["std"])),
    ]
    return transforms.Compose(steps)


def training_dataset(data_cfg: dict[str, Any], preprocessing: dict[str, Any], recipe: Any) -> Any:
    """The training split named by ``data.training``, with the recipe's augmentation."""
    from .data import ArrayImages, DataError, fashion_mnist

    training = data_cfg.get("training")
    if training is None:
        raise DataError("training needs data.training (a training split); it is not set")
    if training["kind"] != "fashion_mnist":
        raise DataError(f"data.training.kind {training['kind']!r} cannot be trained on yet")
    images, labels = fashion_mnist(Path(training["root"]), training["split"])
    limit = recipe.train_limit
    return ArrayImages(
        images[:limit], labels[:limit], train_transform(preprocessing, recipe.augmentation)
    )


def resolve_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training device 'cuda' was requested but torch sees no CUDA device")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


# coremltools' DKM FakePalettize keeps part of its state in plain attributes that its
# state_dict leaves out (a module loaded from a checkpoint then fails on its first forward, or
# continues with other k-means bookkeeping): checkpoint them beside the state_dict.
_ATTRIBUTES_OUTSIDE_STATE_DICT = ("enable_partition", "cum_inertia", "enforce_zero")


def _attributes_outside_state_dict(model: torch.nn.Module) -> dict[str, dict[str, Any]]:
    import copy

    saved = {}
    for name, module in model.named_modules():
        attributes = {
            a: copy.deepcopy(getattr(module, a))
            for a in _ATTRIBUTES_OUTSIDE_STATE_DICT
            if hasattr(module, a)
        }
        if attributes:
            saved[name] = attributes
    return saved


def _restore_attributes(model: torch.nn.Module, saved: dict[str, dict[str, Any]]) -> None:
    for name, attributes in saved.items():
        module = model.get_submodule(name)
        for attribute, value in attributes.items():
            setattr(module, attribute, value)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**63


def _save_atomic(state: dict[str, Any], path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _schedulers(optimizer: Any, recipe: TrainingRecipe) -> Any:
    import torch

    main_epochs = recipe.epochs - recipe.lr_warmup_epochs
    if recipe.lr_scheduler == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=main_epochs)
    elif recipe.lr_scheduler == "step":
        main = torch.optim.lr_scheduler.StepLR(optimizer, recipe.lr_step_size, recipe.lr_gamma)
    else:
        main = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if recipe.lr_warmup_epochs == 0:
        return main
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=recipe.lr_warmup_decay, total_iters=recipe.lr_warmup_epochs
    )
    return torch.optim.lr_scheduler.SequentialLR(
        optimizer, [warmup, main], milestones=[recipe.lr_warmup_epochs]
    )


def _optimizer(model: torch.nn.Module, recipe: TrainingRecipe) -> Any:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
        )
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def evaluate_top1(model: torch.nn.Module, loader: Any, device: str) -> float:
    import torch

    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            logits = model(images.to(device))
            correct += int((logits.argmax(dim=1).cpu() == labels).sum())
            total += len(labels)
    return round(100.0 * correct / total, 4)


EpochCallback = Callable[[int, dict[str, float]], None]


def train(
    model: torch.nn.Module,
    *,
    recipe: TrainingRecipe,
    train_set: Any,
    eval_loader: Any,
    checkpoint_dir: Path,
    on_epoch_end: EpochCallback | None = None,
    on_step: Callable[[], None] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` in place; resume from ``checkpoint_dir`` if it holds this recipe's run.

    ``on_step`` runs after every optimizer step (a coremltools compressor's ``step``, which
    counts steps towards its milestones and schedules). On resume it is replayed once per
    step already done *before* the checkpoint's state is loaded, so the compressor's
    counters and module flags match the interrupted run and the saved tensors win.

    Returns the per-epoch history (loss, learning rate, validation top-1) and whether and
    from which epoch the run resumed.
    """
    import torch
    from tqdm import tqdm

    device = resolve_device(recipe.device)
    model.to(device)
    optimizer = _optimizer(model, recipe)
    scheduler = _schedulers(optimizer, recipe)
    use_amp = recipe.amp and device == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    checkpoint = Path(checkpoint_dir) / CHECKPOINT_NAME
    history: list[dict[str, float]] = []
    start_epoch = 0
    steps = len(train_set) // recipe.batch_size
    if recipe.max_steps_per_epoch is not None:
        steps = min(steps, recipe.max_steps_per_epoch)
    if steps == 0:
        raise ValueError(
            f"batch_size={recipe.batch_size} exceeds the {len(train_set)} training images"
        )
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state.get("fingerprint") == recipe.fingerprint():
            if on_step is not None:
                for _ in range((state["epoch"] + 1) * steps):
                    on_step()
            model.load_state_dict(state["model"])
            _restore_attributes(model, state.get("module_attributes", {}))
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            history = state["history"]
            start_epoch = state["epoch"] + 1
            log.info("resuming from %s after epoch %d", checkpoint, state["epoch"] + 1)
        else:
            log.info("ignoring %s: it was written for another recipe", checkpoint)
    resumed_from = start_epoch
    epochs = tqdm(
        range(start_epoch, recipe.epochs),
        desc="epochs",
        unit="epoch",
        initial=start_epoch,
        total=recipe.epochs,
        disable=not progress,
    )
    for epoch in epochs:
        torch.manual_seed(_epoch_seed(recipe.seed, epoch))
        order = torch.Generator().manual_seed(_epoch_seed(recipe.seed, epoch))
        loader = torch.utils.data.DataLoader(
            train_set, batch_size=recipe.batch_size, shuffle=True, generator=order, drop_last=True
        )
        model.train()
        loss_sum = 0.0
        batches = iter(loader)
        bar = tqdm(
            range(steps),
            desc=f"epoch {epoch + 1}",
            leave=False,
            disable=not progress,
            # In a job's log file (not a terminal) a line every few seconds is plenty.
            mininterval=0.1 if sys.stderr.isatty() else 5.0,
        )
        for step in bar:
            images, labels = next(batches)
            images, labels = images.to(device), labels.to(device)
            with torch.autocast(device_type=device, enabled=use_amp):
                loss = criterion(model(images), labels)
            if not math.isfinite(loss.item()):
                raise TrainingDivergedError(
                    f"loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                    f"lower lr (now {optimizer.param_groups[0]['lr']:g}) or check the data. "
                    f"The last good checkpoint ({checkpoint}) is kept."
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if on_step is not None:
                on_step()
            loss_sum += loss.item()
        metrics = {
            "epoch": epoch + 1,
            "train_loss": round(loss_sum / steps, 6),
            "lr": optimizer.param_groups[0]["lr"],
            "val_top1": evaluate_top1(model, eval_loader, device),
        }
        scheduler.step()
        history.append(metrics)
        log.info("epoch %d/%d: %s", epoch + 1, recipe.epochs, metrics)
        epochs.set_postfix(loss=metrics["train_loss"], top1=metrics["val_top1"])
        _save_atomic(
            {
                "fingerprint": recipe.fingerprint(),
                "epoch": epoch,
                "model": model.state_dict(),
                "module_attributes": _attributes_outside_state_dict(model),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "history": history,
            },
            checkpoint,
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, metrics)
    model.to("cpu").eval()
    return {"history": history, "resumed_from_epoch": resumed_from, "device": device}


def train_baseline(
    *,
    model_cfg: dict[str, Any],
    data_cfg: dict[str, Any],
    weights: Path,
    checkpoint_dir: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a ``train``-source model from a seeded initialisation; save its state_dict."""
    import torch

    from .data import evaluation_loader
    from .models import build_model

    recipe = TrainingRecipe.model_validate(model_cfg["source"]["recipe"])
    torch.manual_seed(recipe.seed)
    model = build_model(model_cfg["architecture"], model_cfg["num_classes"])
    result = train(
        model,
        recipe=recipe,
        train_set=training_dataset(data_cfg, model_cfg["preprocessing"], recipe),
        eval_loader=evaluation_loader(data_cfg, model_cfg["preprocessing"]),
        checkpoint_dir=checkpoint_dir,
        progress=progress,
    )
    _save_atomic(model.state_dict(), Path(weights))
    return {"recipe": recipe.model_dump(mode="json"), **result}
