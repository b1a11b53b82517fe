"""The benchmark numbers Apple publishes in the coremltools optimization guide, as data.

``published.csv`` (beside this module) transcribes every row of the results tables of four pages
of the guide (https://apple.github.io/coremltools/docs-guides/), as saved in the project's
seed documents (``shared/seeds``: three Markdown sources and one rendered page):

- ``accuracy-and-performance`` ("Accuracy and Performance"): tables ``Pruning``,
  ``Palettization`` and ``Linear 8-Bit Quantization``; latency on iPhone 14 Pro (iOS 17
  developer beta 1, Xcode 15 beta 1);
- ``palettization-algorithms``: table ``Results`` (accuracy only);
- ``palettization-performance``: table ``Results`` (latency only, iPhone 14 Pro, iOS 17);
- ``quantization-performance``: table ``Results`` (latency on iPhone 14 Pro and 15 Pro).

Each table repeats its own Float16 baseline rows. Numbers are kept as the pages print them;
an accuracy ``mean ± std`` is the mean and standard deviation over three training trials, and
a single value (post-training and Float16 rows) has no std. Tables with an "Optimization
Algorithm" column instead of "Optimization Workflow" get the workflow derived from it
(Differentiable K-Means: Training Time, K-Means: Post Training). ``dataset`` and ``metric``
come from the pages' Model Info tables; the urls are the link targets of the model and config
cells, where a page links them. ``tests/reference/test_published.py`` re-parses the seeds and
checks the file value for value.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, ValidationError, model_validator

from ..schema_base import StrictModel

DEFAULT_PUBLISHED = Path(__file__).with_name("published.csv")

Page = Literal[
    "accuracy-and-performance",
    "palettization-algorithms",
    "palettization-performance",
    "quantization-performance",
]
Workflow = Literal["n/a", "Training Time", "Post Training"]
Text = Annotated[str, Field(min_length=1)]
Milliseconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class PublishedRow(StrictModel):
    """One row of a published results table (one compressed or Float16 model)."""

    page: Page
    table: Text
    model: Text
    config: Text
    workflow: Workflow
    algorithm: Text | None = None
    compression_ratio: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    accuracy_mean: Percent | None = None
    accuracy_std: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    latency_iphone_14_pro_ms: Milliseconds | None = None
    latency_iphone_15_pro_ms: Milliseconds | None = None
    dataset: Text
    metric: Text
    package_url: Text | None = None
    config_url: Text | None = None

    @model_validator(mode="after")
    def _std_needs_a_mean(self) -> Self:
        if self.accuracy_std is not None and self.accuracy_mean is None:
            raise ValueError("accuracy_std is given without accuracy_mean")
        return self

    def key(self) -> tuple[str, str, str]:
        """What identifies the row within its table: (model, config, workflow)."""
        return (self.model, self.config, self.workflow)


COLUMNS: tuple[str, ...] = tuple(PublishedRow.model_fields)


def load_published(path: Path = DEFAULT_PUBLISHED) -> list[PublishedRow]:
    """The rows of ``path`` (a CSV with exactly the ``COLUMNS`` header); an empty cell is None.

    Raises ValueError naming the file, the line and the field of the first bad row.
    """
    rows: list[PublishedRow] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader, None)
            if header is None or tuple(header) != COLUMNS:
                raise ValueError(
                    f"{path}: line 1: the header must be {','.join(COLUMNS)}; got {header!r}"
                )
            for cells in reader:
                line = reader.line_num
                if not cells:
                    continue  # a blank line
                if len(cells) != len(COLUMNS):
                    field = COLUMNS[len(cells)] if len(cells) < len(COLUMNS) else "(extra)"
                    raise ValueError(
                        f"{path}: line {line}: field {field}: expected {len(COLUMNS)} cells, "
                        f"got {len(cells)}"
                    )
                data: dict[str, Any] = {
                    name: (cell if cell.strip() else None)
                    for name, cell in zip(COLUMNS, cells, strict=True)
                }
                try:
                    rows.append(PublishedRow.model_validate(data))
                except ValidationError as error:
                    raise ValueError(f"{path}: line {line}: {_describe(error)}") from None
        except csv.Error as error:
            raise ValueError(f"{path}: line {reader.line_num}: {error}") from None
    return rows


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(row)"
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        parts.append(f"field {field}: {item['msg']}{shown}")
    return "; ".join(parts)
