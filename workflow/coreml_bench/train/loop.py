"""The resumable training loop shared by the baseline and every fine-tuning algorithm.

The loop follows the torchvision classification reference recipe (SGD or AdamW, a main LR
schedule after a linear warm-up, label smoothing, standard augmentations) and is what the
fp32 baseline of a ``train`` model source runs; training-time compression reuses it.

Reproducibility: every epoch starts from RNG state derived from (seed, epoch), so a run
resumed from the checkpoint of epoch k gives the same weights as one that never stopped.
torch is imported inside functions.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import save_with
from .recipe import TrainingRecipe

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


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

    save_with(lambda tmp: torch.save(state, tmp), path)


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


def _to_device(targets: Any, device: str) -> Any:
    if isinstance(targets, dict):
        return {name: value.to(device) for name, value in targets.items()}
    return targets.to(device)


EpochCallback = Callable[[int, dict[str, float]], None]


def train(
    model: torch.nn.Module,
    *,
    recipe: TrainingRecipe,
    train_set: Any,
    eval_loader: Any = None,
    checkpoint_dir: Path,
    criterion: Callable[[Any, Any], Any] | None = None,
    validate: Callable[[torch.nn.Module, str], dict[str, float]] | None = None,
    on_epoch_end: EpochCallback | None = None,
    on_step: Callable[[], None] | None = None,
    progress: bool = True,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place; resume from ``checkpoint_dir`` if it holds this recipe's run.

    ``on_step`` runs after every optimizer step (a coremltools compressor's ``step``, which
    counts steps towards its milestones and schedules). On resume it is replayed once per
    step already done *before* the checkpoint's state is loaded, so the compressor's
    counters and module flags match the interrupted run and the saved tensors win.

    ``criterion(output, targets)`` defaults to cross entropy (the recipe's label smoothing)
    and ``validate(model, device)`` to top-1 on ``eval_loader``; a task binding
    (``train.tasks``) gives both for other tasks (e.g. a detector's loss and mAP). Targets
    may be tensors or dicts of tensors.

    Returns the per-epoch history (loss, learning rate, validation metrics) and whether and
    from which epoch the run resumed.
    """
    import torch
    from tqdm import tqdm

    # What the checkpoint must have been written by to be resumed: the exact job (see
    # recipe.job_fingerprint); the recipe alone when the caller gives nothing else.
    fingerprint = fingerprint or recipe.fingerprint()
    device = resolve_device(recipe.device)
    model.to(device)
    optimizer = _optimizer(model, recipe)
    scheduler = _schedulers(optimizer, recipe)
    use_amp = recipe.amp and device == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    if criterion is None:
        criterion = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    if validate is None:
        if eval_loader is None:
            raise ValueError("train needs eval_loader or validate")
        loader = eval_loader

        def validate(network: torch.nn.Module, on: str) -> dict[str, float]:
            return {"val_top1": evaluate_top1(network, loader, on)}

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
        if state.get("fingerprint") == fingerprint:
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
            log.info("ignoring %s: another job (recipe, settings or weights) wrote it", checkpoint)
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
            images, labels = images.to(device), _to_device(labels, device)
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
            **validate(model, device),
        }
        scheduler.step()
        history.append(metrics)
        log.info("epoch %d/%d: %s", epoch + 1, recipe.epochs, metrics)
        epochs.set_postfix(metrics)
        _save_atomic(
            {
                "fingerprint": fingerprint,
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
