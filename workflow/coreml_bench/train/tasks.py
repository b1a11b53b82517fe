"""What the training loop needs for one task: the training pairs, the loss, the validation.

One entry per task (the architecture's ``task``): classification trains with cross entropy on
(image, class) pairs and validates top-1; detection trains with the architecture's own loss
on (image, dense targets) pairs its ``encode_targets`` makes, and validates COCO mAP through
the same decoding and pycocotools scoring as the evaluation stage. The baseline and every
fine-tuning algorithm bind a task the same way, so a new task is one entry here.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..data import DATA_KINDS, DataError, DataSelection, evaluation_loader, training_dataset
from ..data.transforms import DETECTION_AUGMENTATIONS
from ..models import ARCHITECTURES, ModelSpec
from ..registry import Registry
from ..schema_base import StrictModel
from .recipe import TrainingRecipe


@dataclass
class TrainingBinding:
    """The loop's view of one model on one training set (see ``loop.train``).

    ``training_set(recipe)`` builds the split with that recipe's augmentation and limit;
    ``criterion(output, targets)`` is the loss; ``validate(model, device)`` returns the
    per-epoch validation metrics (``val_top1`` or ``val_map``); ``metric`` names the one the
    manifest reports as the torch model's accuracy.
    """

    training_set: Callable[[TrainingRecipe], Any]
    criterion: Callable[[TrainingRecipe], Callable[[Any, Any], Any]]
    validate: Callable[[Any, str], dict[str, float]]
    metric: str

    def loop_arguments(self, recipe: TrainingRecipe) -> dict[str, Any]:
        """Keyword arguments of ``loop.train`` for this binding and recipe."""
        return {
            "train_set": self.training_set(recipe),
            "criterion": self.criterion(recipe),
            "validate": self.validate,
        }


BindTask = Callable[
    [ModelSpec, StrictModel | None, DataSelection], contextlib.AbstractContextManager
]
TASKS: Registry[BindTask] = Registry("training task")


def _no_training_data() -> DataError:
    return DataError("training needs data.training (a training split); it is not set")


@contextlib.contextmanager
def _classification(
    model: ModelSpec, training: StrictModel | None, evaluation: DataSelection
) -> Iterator[TrainingBinding]:
    import torch

    from .loop import evaluate_top1

    loader = evaluation_loader(evaluation, model.preprocessing)

    def training_set(recipe: TrainingRecipe) -> Any:
        if training is None:
            raise _no_training_data()
        return training_dataset(training, model.preprocessing, recipe)

    def criterion(recipe: TrainingRecipe) -> Any:
        return torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    def validate(network: Any, device: str) -> dict[str, float]:
        return {"val_top1": evaluate_top1(network, loader, device)}

    yield TrainingBinding(training_set, criterion, validate, metric="val_top1")


@contextlib.contextmanager
def _detection(
    model: ModelSpec, training: StrictModel | None, evaluation: DataSelection
) -> Iterator[TrainingBinding]:
    import torch

    from ..data.detection import coco_training_dataset
    from ..evaluate.metrics import detection_map

    architecture = ARCHITECTURES[model.architecture]
    if architecture.encode_targets is None or architecture.loss is None:
        raise ValueError(f"architecture {model.architecture!r} has no detection training hooks")
    with contextlib.ExitStack() as stack:
        files = None
        if training is not None:
            kind = DATA_KINDS[training.kind]  # type: ignore[attr-defined]
            files = stack.enter_context(kind.detection_files(training))
        size = model.preprocessing.crop_size
        encode = functools.partial(
            architecture.encode_targets, num_classes=model.num_classes, input_size=size
        )

        def training_set(recipe: TrainingRecipe) -> Any:
            if files is None:
                raise _no_training_data()
            if recipe.augmentation not in DETECTION_AUGMENTATIONS:
                raise ValueError(
                    f"recipe.augmentation {recipe.augmentation!r} is for classifiers; a "
                    f"detector takes one of {list(DETECTION_AUGMENTATIONS)}"
                )
            dataset = coco_training_dataset(
                *files,
                input_size=size,
                mean=model.preprocessing.mean,
                std=model.preprocessing.std,
                flip=recipe.augmentation == "horizontal_flip",
                encode=encode,
                limit=recipe.train_limit,
            )
            classes = len(dataset.category_ids)
            if classes != model.num_classes:
                raise DataError(
                    f"data.training.annotations {str(files[1])!r} has {classes} categories but "
                    f"model {model.id!r} predicts num_classes={model.num_classes}"
                )
            return dataset

        def criterion(recipe: TrainingRecipe) -> Any:
            return architecture.loss

        def validate(network: Any, device: str) -> dict[str, float]:
            network.eval()

            @torch.no_grad()
            def predict(batch: Any) -> Any:
                return network(batch.to(device)).float().cpu()

            scores = detection_map(predict, evaluation, model, progress=False)
            return {"val_map": scores["accuracy"]}

        yield TrainingBinding(training_set, criterion, validate, metric="val_map")


TASKS.add("classification", _classification)
TASKS.add("detection", _detection)


def bind_task(
    model: ModelSpec, training: StrictModel | None, evaluation: DataSelection
) -> contextlib.AbstractContextManager[TrainingBinding]:
    """The binding of ``model``'s task, valid inside the ``with`` block (detection kinds may
    build their COCO files in a scratch folder that lasts as long)."""
    return TASKS[model.task](model, training, evaluation)
