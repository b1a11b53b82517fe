"""Section ``data``: the evaluation set, the training split, batch size and limit.

The kinds a set may be are the data-kind registry's entries (``data/kinds.py`` and plugins):
the discriminated unions below are built from it, never listed by hand.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from ..data import DATA_KINDS, DataSelection
from ..schema_base import StrictModel


def _union(models: list[type[StrictModel]]) -> Any:
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator="kind")]  # noqa: UP007


EvaluationData = _union([kind.params for _, kind in DATA_KINDS.items()])
TrainingData = _union(
    [kind.training_params for _, kind in DATA_KINDS.items() if kind.training_params is not None]
)
# The default evaluation set: the offline foolbox sample (the quickstart).
_DEFAULT_EVALUATION = DATA_KINDS["foolbox_imagenet_sample"].params()


class DataConfig(StrictModel):
    evaluation: EvaluationData = _DEFAULT_EVALUATION  # type: ignore[valid-type]
    training: TrainingData | None = Field(  # type: ignore[valid-type]
        default=None, description="training split, for models the workflow trains"
    )
    batch_size: int = Field(default=32, gt=0, le=4096)
    limit: int | None = Field(default=None, gt=0, description="evaluate only the first N images")

    def evaluation_selection(self, evaluation: StrictModel | None = None) -> DataSelection:
        """What an evaluation job reads: ``evaluation`` (a model's own set) or data.evaluation."""
        return DataSelection(
            source=evaluation or self.evaluation, batch_size=self.batch_size, limit=self.limit
        )
