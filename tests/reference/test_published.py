"""The published reference numbers: the CSV loads, and it is exactly what the seed documents
print (re-parsed here, independently of how the CSV was written), row for row and value for
value."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest
from coreml_bench.reference import DEFAULT_PUBLISHED, PublishedRow, load_published
from helpers import ROOT

# The seeds live beside the checkout: <root>/../shared/seeds.
SEEDS = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"
CSV_PATH = ROOT / DEFAULT_PUBLISHED
HEADER = (
    "page,table,model,config,workflow,algorithm,compression_ratio,accuracy_mean,accuracy_std,"
    "latency_iphone_14_pro_ms,latency_iphone_15_pro_ms,dataset,metric,package_url,config_url"
)
COLUMNS = HEADER.split(",")
FLOATS = {
    "compression_ratio",
    "accuracy_mean",
    "accuracy_std",
    "latency_iphone_14_pro_ms",
    "latency_iphone_15_pro_ms",
}

# (page, table) -> rows; each table repeats its Float16 baselines.
EXPECTED_COUNTS = {
    ("accuracy-and-performance", "Pruning"): 9,
    ("accuracy-and-performance", "Palettization"): 20,
    ("accuracy-and-performance", "Linear 8-Bit Quantization"): 9,
    ("palettization-algorithms", "Results"): 20,
    ("palettization-performance", "Results"): 20,
    ("quantization-performance", "Results"): 9,
}
MARKDOWN_TABLES = {
    "accuracy-and-performance": ("Pruning", "Palettization", "Linear 8-Bit Quantization"),
    "palettization-algorithms": ("Results",),
    "palettization-performance": ("Results",),
}
# palettization-algorithms has no Model Info table of its own: it links to this page's.
MODEL_INFO_PAGE = {"palettization-algorithms": "palettization-performance"}
WORKFLOW_OF_ALGORITHM = {
    "Differentiable K-Means": "Training Time",
    "K-Means": "Post Training",
    "n/a": "n/a",
}
LINK = re.compile(r"\[(?P<text>[^\]]*)\]\((?P<url>[^)\s]*)\)")


# --- an independent parse of the seed documents -------------------------------------------


def _seed(name: str) -> str:
    if not SEEDS.is_dir():
        pytest.fail(f"seed documents not found: looked for the folder {SEEDS}")
    path = SEEDS / name
    if not path.is_file():
        pytest.fail(f"seed document not found: looked for {path}")
    return path.read_text(encoding="utf-8")


def _link(cell: str) -> tuple[str, str]:
    """(text, url) of a cell that is one Markdown link, else (cell, "")."""
    match = LINK.fullmatch(cell)
    return (match["text"], match["url"]) if match else (cell, "")


def _markdown_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """The first pipe table under each heading, as header -> raw cell dicts."""
    tables: dict[str, list[dict[str, str]]] = {}
    heading: str | None = None
    header: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            heading, header = line.lstrip("#").strip(), None
            continue
        if not line.lstrip().startswith("|"):
            header = None
            continue
        if heading is None or (header is None and heading in tables):
            continue  # before any heading, or a second table under one heading
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            tables[heading] = []
        elif all(re.fullmatch(r":?-+:?", cell) or not cell for cell in cells):
            continue  # the separator row
        else:
            assert len(cells) == len(header), f"ragged row under {heading!r}: {line}"
            tables[heading].append(dict(zip(header, cells, strict=True)))
    return tables


def _cell_blocks(text: str, start: str, width: int, stop: str) -> list[dict[str, str]]:
    """A rendered table: one cell per non-blank line after ``start``, ``width`` per row."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    begin = lines.index(start) + 1
    end = next(i for i in range(begin, len(lines)) if lines[i].startswith(stop))
    cells = lines[begin:end]
    assert len(cells) % width == 0, f"{start}: {len(cells)} cells is not a multiple of {width}"
    header, body = cells[:width], cells[width:]
    return [dict(zip(header, body[i : i + width], strict=True)) for i in range(0, len(body), width)]


def _accuracy(cell: str) -> tuple[str, str]:
    mean, _, std = (part.strip() for part in cell.partition("±"))
    return mean, std


def _model_info(rows: list[dict[str, str]]) -> dict[str, tuple[str, str]]:
    return {row["Model Name"]: (_link(row["Dataset"])[0], row["Accuracy Metric"]) for row in rows}


def _seed_rows() -> list[dict[str, str]]:
    """Every results row of the seeds, in CSV column order, as the strings the pages print."""
    markdown = {page: _markdown_tables(_seed(f"{page}.md")) for page in MARKDOWN_TABLES}
    rendered = _seed("quantization-performance.txt")
    info = {
        page: _model_info(tables["Model Info"])
        for page, tables in markdown.items()
        if "Model Info" in tables
    }
    info["quantization-performance"] = _model_info(
        _cell_blocks(rendered, "Model Info#", 5, "Results#")
    )

    def dataset(page: str, model: str) -> tuple[str, str]:
        return info[MODEL_INFO_PAGE.get(page, page)][model]

    rows: list[dict[str, str]] = []
    for page, names in MARKDOWN_TABLES.items():
        for table in names:
            for cells in markdown[page][table]:
                model, package_url = _link(cells["Model Name"])
                config, config_url = _link(cells["Config"])
                algorithm = cells.get("Optimization Algorithm", "")
                workflow = cells.get("Optimization Workflow") or WORKFLOW_OF_ALGORITHM[algorithm]
                mean, std = _accuracy(cells.get("Accuracy", ""))
                rows.append(
                    {
                        "page": page,
                        "table": table,
                        "model": model,
                        "config": config,
                        "workflow": workflow,
                        "algorithm": algorithm,
                        "compression_ratio": cells["Compression Ratio"],
                        "accuracy_mean": mean,
                        "accuracy_std": std,
                        # Both pages measured on iPhone 14 Pro.
                        "latency_iphone_14_pro_ms": cells.get("Latency in ms (per batch)", ""),
                        "latency_iphone_15_pro_ms": "",
                        "dataset": dataset(page, model)[0],
                        "metric": dataset(page, model)[1],
                        "package_url": package_url,
                        "config_url": config_url,
                    }
                )
    for cells in _cell_blocks(rendered, "Results#", 7, "Note:"):
        mean, std = _accuracy(cells["Accuracy"])
        page, model = "quantization-performance", cells["Model Name"]
        rows.append(
            {
                "page": page,
                "table": "Results",
                "model": model,
                "config": cells["Config"],
                "workflow": cells["Optimization Workflow"],
                "algorithm": "",
                "compression_ratio": cells["Compression Ratio"],
                "accuracy_mean": mean,
                "accuracy_std": std,
                "latency_iphone_14_pro_ms": cells["Latency in ms (per batch) on iPhone 14 Pro"],
                "latency_iphone_15_pro_ms": cells["Latency in ms (per batch) on iPhone 15 Pro"],
                "dataset": dataset(page, model)[0],
                "metric": dataset(page, model)[1],
                "package_url": "",
                "config_url": "",
            }
        )
    return rows


def _csv_cells() -> list[dict[str, str]]:
    with CSV_PATH.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- the tests -----------------------------------------------------------------------------


def test_the_csv_loads_with_the_expected_rows_per_table() -> None:
    assert CSV_PATH.read_text(encoding="utf-8").splitlines()[0] == HEADER
    rows = load_published(CSV_PATH)
    assert all(isinstance(row, PublishedRow) for row in rows)
    assert Counter((row.page, row.table) for row in rows) == EXPECTED_COUNTS
    assert sum(row.config == "Float16" for row in rows) == 3 + 4 + 3 + 4 + 4 + 3


def test_the_csv_is_exactly_what_the_seed_documents_print() -> None:
    expected = _seed_rows()
    got = _csv_cells()
    assert [list(row) for row in got[:1]] == [COLUMNS]
    for line, (have, want) in enumerate(zip(got, expected, strict=False), start=2):
        assert have == want, f"{CSV_PATH}: line {line} differs from the seed documents"
    assert len(got) == len(expected), f"{len(got)} CSV rows, {len(expected)} in the seeds"


def test_the_loaded_values_are_the_printed_numbers() -> None:
    for row, want in zip(load_published(CSV_PATH), _seed_rows(), strict=True):
        for name in COLUMNS:
            text = want[name]
            value = float(text) if name in FLOATS and text else (text or None)
            assert getattr(row, name) == value, (row.key(), name)


def test_every_key_is_unique_within_its_table() -> None:
    keys = Counter((row.page, row.table, *row.key()) for row in load_published(CSV_PATH))
    assert [key for key, count in keys.items() if count > 1] == []


GOOD = (
    "accuracy-and-performance,Pruning,ResNet50,Float16,n/a,,1.0,76.14,,1.42,,"
    "ImageNet,Top-1 Accuracy (%),,"
)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (GOOD.replace(",1.0,", ",abc,"), "compression_ratio"),
        (GOOD.replace(",n/a,", ",Someday,"), "workflow"),
        (GOOD.replace("accuracy-and-performance,", "elsewhere,"), "page"),
        (GOOD.replace(",ImageNet,", ",,"), "dataset"),
        (GOOD.replace(",76.14,,", ",,0.05,"), "accuracy_std"),
        (GOOD.replace(",1.42,", ",-1,"), "latency_iphone_14_pro_ms"),
        (GOOD.rsplit(",", 3)[0], "metric"),
    ],
    ids=["not-a-number", "workflow", "page", "empty-required", "std-alone", "negative", "short"],
)
def test_a_bad_row_is_refused_naming_file_line_and_field(
    tmp_path: Path, bad: str, field: str
) -> None:
    path = tmp_path / "published.csv"
    path.write_text(f"{HEADER}\n{GOOD}\n{bad}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 3\b") as caught:
        load_published(path)
    assert str(path) in str(caught.value)
    assert field in str(caught.value)


def test_a_wrong_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "published.csv"
    path.write_text(HEADER.replace("config,", "setting,", 1) + f"\n{GOOD}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 1\b.*header"):
        load_published(path)


def test_empty_cells_are_none(tmp_path: Path) -> None:
    path = tmp_path / "published.csv"
    path.write_text(f"{HEADER}\n{GOOD}\n", encoding="utf-8")
    (row,) = load_published(path)
    assert row.algorithm is None and row.accuracy_std is None and row.package_url is None
    assert row.key() == ("ResNet50", "Float16", "n/a")
