"""The calibration split: a model's evaluation images, each as several deterministic views."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import DataSelection
from ..data.transforms import Preprocessing, eval_transform, train_transform
from .settings import CalibrationSettings


def calibration_dataset(
    data: DataSelection, preprocessing: Preprocessing, settings: CalibrationSettings
) -> Any:
    """(image tensor, label) items: view ``v`` of image ``i`` at index ``i * views + v``.

    View 0 is the evaluation transform; the others are random-resized crops with flips,
    each drawn from its own seed, so every run (and every job) sees the same pixels.
    """
    import torch

    kind = data.kind
    if kind.dataset is None:
        raise ValueError(
            f"sensitivity.calibration: data kind {data.source.kind!r} is {kind.task} data; "  # type: ignore[attr-defined]
            "per-layer sensitivity needs classification images"
        )
    limit = settings.limit if settings.limit is not None else data.limit
    base = kind.dataset(data.source, lambda image: image, limit)
    evaluation = eval_transform(preprocessing)
    augmented = train_transform(preprocessing, "random_resized_crop_flip")
    views = settings.views_per_image

    class _Views(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(base) * views

        def __getitem__(self, index: int) -> tuple[Any, int]:
            image, label = base[index // views]
            if index % views == 0:
                return evaluation(image), int(label)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(settings.seed * 1_000_003 + index)
                return augmented(image), int(label)

    return _Views()


def calibration_loader(
    data: DataSelection, preprocessing: Preprocessing, settings: CalibrationSettings
) -> Any:
    import torch

    return torch.utils.data.DataLoader(
        calibration_dataset(data, preprocessing, settings),
        batch_size=settings.batch_size,
        shuffle=False,
    )


def calibration_batches(
    data: DataSelection, preprocessing: Preprocessing, settings: CalibrationSettings
) -> list[tuple[Any, Any]]:
    """The calibration split decoded once into (images, labels) batches, kept in memory
    (every variant of a per-layer job runs all of it)."""
    return list(calibration_loader(data, preprocessing, settings))


@dataclass(frozen=True)
class CalibrationData:
    """What a calibrating compression reads: the fp16 package (its compiled plan beside it)
    and the calibration batches to run through it."""

    package: Path
    batches: list[tuple[Any, Any]]
