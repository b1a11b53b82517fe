"""A model as every job sees it: the config entry with the registry's defaults filled in."""

from __future__ import annotations

from pydantic import Field

from ..data.registry import Task
from ..data.transforms import Preprocessing
from ..schema_base import Identifier, StrictModel
from .sources import WeightsSource


class ModelSpec(StrictModel):
    """What a stage needs to know about a model (rule params carry it as JSON).

    Display names and the fine-tuning recipe stay out: a job's params hold only what the job's
    result depends on.
    """

    id: Identifier
    architecture: str
    source: WeightsSource
    num_classes: int = Field(gt=0)
    preprocessing: Preprocessing
    in_channels: int = Field(gt=0)
    task: Task

    @property
    def input_size(self) -> int:
        return self.preprocessing.crop_size

    def example_shape(self) -> tuple[int, int, int, int]:
        """The batch-1 input shape of the converted program."""
        return (1, self.in_channels, self.input_size, self.input_size)
