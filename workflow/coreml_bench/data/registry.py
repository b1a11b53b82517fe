"""The data-kind registry: each kind carries its parameters, its task, its path checks and
how to read it, so adding a data set layout is one entry (``data/kinds.py`` or a plugin)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..registry import Registry
from ..schema_base import StrictModel
from .transforms import eval_transform, train_transform

Task = Literal["classification", "detection"]


@dataclass(frozen=True)
class DataSelection:
    """What a job reads: one data set (a kind's params), its batch size and image limit."""

    source: StrictModel
    batch_size: int = 32
    limit: int | None = None

    @property
    def kind(self) -> DataKind:
        return DATA_KINDS[self.source.kind]  # type: ignore[attr-defined]


@dataclass(frozen=True)
class DataKind:
    """One data layout.

    ``params`` validates it as evaluation data; ``training_params`` (None: it cannot be) as
    ``data.training`` (same fields, other defaults, e.g. the train split). ``check`` lists the
    problems (field, message) of paths that must exist before any job runs. Classification
    kinds give ``dataset(params, transform, limit)`` → (tensor, label) items; detection kinds
    give ``coco_files(params, scratch)`` → (images folder, COCO instances json), writing any
    files they must make under ``scratch``.
    """

    params: type[StrictModel]
    task: Task
    description: str
    check: Callable[[Any], list[tuple[str, str]]] = lambda params: []
    dataset: Callable[[Any, Any, int | None], Any] | None = None
    coco_files: Callable[[Any, Path], tuple[Path, Path]] | None = None
    training_params: type[StrictModel] | None = None
    num_classes: Callable[[Any], int | None] = lambda params: None

    def __post_init__(self) -> None:
        reader = self.dataset if self.task == "classification" else self.coco_files
        if reader is None:
            raise ValueError(f"a {self.task} data kind needs its reader")

    @contextlib.contextmanager
    def detection_files(self, params: Any) -> Iterator[tuple[Path, Path]]:
        """(images folder, instances json), valid inside the ``with`` block."""
        import tempfile

        assert self.coco_files is not None, "only detection kinds have COCO files"
        with tempfile.TemporaryDirectory(prefix=f"{params.kind}-") as scratch:
            yield self.coco_files(params, Path(scratch))


DATA_KINDS: Registry[DataKind] = Registry("data kind")


def evaluation_loader(data: DataSelection, preprocessing: Any) -> Any:
    """The evaluation set of a classification kind, eval-transformed, in order, batched."""
    import torch

    kind = data.kind
    if kind.dataset is None:
        raise ValueError(f"data kind {data.source.kind!r} is {kind.task} data, not image labels")  # type: ignore[attr-defined]
    dataset = kind.dataset(data.source, eval_transform(preprocessing), data.limit)
    return torch.utils.data.DataLoader(dataset, batch_size=data.batch_size, shuffle=False)


def training_dataset(training: StrictModel, preprocessing: Any, recipe: Any) -> Any:
    """The training split with the recipe's augmentation (first ``recipe.train_limit``)."""

    kind = DATA_KINDS[training.kind]  # type: ignore[attr-defined]
    assert kind.dataset is not None, "the config admits only kinds that can be trained on"
    transform = train_transform(preprocessing, recipe.augmentation)
    return kind.dataset(training, transform, recipe.train_limit)
