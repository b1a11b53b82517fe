"""The built-in classification data kinds that need no download: the foolbox sample and an
ImageNet-style class-folder tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from coreml_bench.data import DATA_KINDS, DataError
from coreml_bench.data.imagenet import foolbox_imagenet_sample, image_folder
from coreml_bench.data.kinds import FoolboxSampleData


def test_foolbox_sample_has_20_labelled_real_images() -> None:
    items = foolbox_imagenet_sample()
    assert len(items) == 20
    assert items[0][0].name == "imagenet_00_243.jpg" and items[0][1] == 243
    kind = DATA_KINDS["foolbox_imagenet_sample"]
    assert kind.dataset is not None
    assert len(kind.dataset(FoolboxSampleData(), None, 3)) == 3


def test_image_folder_layout_and_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        image_folder(tmp_path / "nowhere")
    (tmp_path / "flat.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"no class sub-folders \(found: \['flat.jpg'\]\)"):
        image_folder(tmp_path)
    for name in ("n02", "n01"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.JPEG").write_bytes(b"")
    assert [label for _p, label in image_folder(tmp_path)] == [0, 1]
    assert image_folder(tmp_path)[0][0].parent.name == "n01"
