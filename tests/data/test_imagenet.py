"""ImageNet validation data in both standard layouts, built offline from foolbox's real images.

The foolbox wheel ships 20 real ImageNet validation images named by their canonical class
index; every fixture here rearranges them into a layout and checks the labels survive.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
from coreml_bench.config import ConfigError, ImageNetFlatData, validate_config
from coreml_bench.data import DATA_KINDS, DataError, DataSelection, Preprocessing, evaluation_loader
from coreml_bench.data.imagenet import (
    foolbox_imagenet_sample,
    image_folder,
    imagenet_flat,
    imagenet_synsets,
)

DEVKIT = "ILSVRC2012_devkit_t12"
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
# Non-leaf synsets as in the real meta.mat (IDs after the 1000 leaves); none is a class.
NON_LEAVES = [("n00001740", "entity", 3), ("n00021939", "artifact", 2)]


@pytest.fixture(scope="module")
def sample() -> list[tuple[Path, int]]:
    return foolbox_imagenet_sample()


def _val_name(number: int) -> str:
    return f"ILSVRC2012_val_{number:08d}.JPEG"


def _val_numbers(sample: list[tuple[Path, int]]) -> list[int]:
    # Odd numbers: the ground truth also holds lines for absent images between present ones.
    return [2 * i + 1 for i in range(len(sample))]


def _flat_images(folder: Path, sample: list[tuple[Path, int]]) -> dict[str, int]:
    """Copy the sample as ILSVRC2012_val_*.JPEG files; return file name -> expected label."""
    folder.mkdir(parents=True)
    expected = {}
    for number, (path, label) in zip(_val_numbers(sample), sample, strict=True):
        shutil.copy(path, folder / _val_name(number))
        expected[_val_name(number)] = label
    return expected


def _write_meta_mat(path: Path, ids: dict[str, int]) -> None:
    """meta.mat in the real devkit's layout: a synsets struct array, one row per synset."""
    fields = [
        "ILSVRC2012_ID",
        "WNID",
        "words",
        "gloss",
        "num_children",
        "children",
        "wordnet_height",
        "num_train_images",
    ]
    rows = [
        (float(ilsvrc_id), wnid, f"words of {wnid}", "gloss", 0.0, np.zeros((1, 0)), 0.0, 1300.0)
        for wnid, ilsvrc_id in sorted(ids.items(), key=lambda item: item[1])
    ]
    for offset, (wnid, words, children) in enumerate(NON_LEAVES):
        children_ids = np.arange(1, children + 1, dtype=float)[None, :]
        rows.append((1001.0 + offset, wnid, words, "", float(children), children_ids, 5.0, 0.0))
    synsets = np.zeros((len(rows), 1), dtype=[(name, "O") for name in fields])
    for i, row in enumerate(rows):
        synsets[i, 0] = row
    scipy.io.savemat(path, {"synsets": synsets})


def _devkit(root: Path, sample: list[tuple[Path, int]], extra_lines: int = 3) -> Path:
    """A devkit whose ILSVRC2012_IDs are a shuffle of the canonical order (as in the real one)."""
    wnids = imagenet_synsets()
    order = np.random.default_rng(2012).permutation(len(wnids))
    ids = {wnids[int(index)]: position + 1 for position, index in enumerate(order)}
    # A mapping that skipped meta.mat (ID - 1 as index) must get these labels wrong.
    assert all(ids[wnids[label]] - 1 != label for _path, label in sample)
    by_number = dict(zip(_val_numbers(sample), (label for _p, label in sample), strict=True))
    last = max(by_number) + extra_lines
    # Absent images get arbitrary (but valid) labels: they must simply be ignored.
    lines = [str(ids[wnids[by_number.get(n, n % 1000)]]) for n in range(1, last + 1)]
    data = root / DEVKIT / "data"
    data.mkdir(parents=True)
    (data / GROUND_TRUTH).write_text("\n".join(lines) + "\n")
    _write_meta_mat(data / "meta.mat", ids)
    return root / DEVKIT


def _labels_by_name(items: list[tuple[Path, int]]) -> dict[str, int]:
    return {path.name: label for path, label in items}


def _dataset(evaluation: dict, limit: int | None = None) -> Any:
    """The data kind's own reader, as a job reads ``data.evaluation`` with ``data.limit``."""
    kind = DATA_KINDS[evaluation["kind"]]
    return kind.dataset(kind.params.model_validate(evaluation), lambda image: image, limit)


def _message(call: object, *args: object) -> str:
    with pytest.raises(DataError) as info:
        call(*args)  # type: ignore[operator]
    return str(info.value)


# --- the class list ---------------------------------------------------------------------------


def test_synsets_are_the_canonical_imagenet_order() -> None:
    wnids = imagenet_synsets()
    assert len(wnids) == 1000 and list(wnids) == sorted(wnids)
    assert (wnids[0], wnids[1], wnids[999]) == ("n01440764", "n01443537", "n15075141")


# --- folder layout ------------------------------------------------------------------------------


def test_wnid_folders_get_canonical_indices(tmp_path: Path, sample: list[tuple[Path, int]]) -> None:
    wnids = imagenet_synsets()
    for path, label in sample:
        (tmp_path / wnids[label]).mkdir(exist_ok=True)
        shutil.copy(path, tmp_path / wnids[label] / path.name)
    (tmp_path / ".ipynb_checkpoints").mkdir()  # debris, not a class
    items = image_folder(tmp_path)
    assert len({path.parent for path, _ in items}) < 20  # a small subset of the 1000 classes
    assert _labels_by_name(items) == _labels_by_name(sample)
    evaluation = {"kind": "imagenet_folder", "path": str(tmp_path)}
    assert len(_dataset(evaluation, limit=4)) == 4


def test_other_folder_names_keep_the_sorted_rule(tmp_path: Path) -> None:
    # n01/n02 look like WordNet ids but are not ImageNet-1k classes: a data set of its own.
    for name in ("cat", "ant", "n02", "n01"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.jpg").write_bytes(b"")
    labels = {path.parent.name: label for path, label in image_folder(tmp_path)}
    assert labels == {"ant": 0, "cat": 1, "n01": 2, "n02": 3}


def test_mixed_folder_names_are_refused(tmp_path: Path) -> None:
    for name in ("n01440764", "n01443537", "misc", "n99999999"):
        (tmp_path / name).mkdir()
    message = _message(image_folder, tmp_path)
    assert "data.evaluation.path" in message and "mixes" in message
    assert "'misc'" in message and "'n99999999'" in message and "n01440764" in message
    assert "not ImageNet-1k classes" in message


def test_folder_layout_errors_say_what_was_found(tmp_path: Path) -> None:
    message = _message(image_folder, tmp_path / "nowhere")
    assert "data.evaluation.path" in message and "does not exist" in message
    (tmp_path / "file.txt").write_text("")
    message = _message(image_folder, tmp_path / "file.txt")
    assert "data.evaluation.path" in message and "is a file" in message

    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / _val_name(1)).write_bytes(b"")
    message = _message(image_folder, flat)
    assert "no class sub-folders" in message and _val_name(1) in message
    assert "kind: imagenet_flat" in message

    nested = tmp_path / "imagenet"
    (nested / "val" / "n01440764").mkdir(parents=True)
    (nested / "val" / "n01440764" / "a.JPEG").write_bytes(b"")
    (nested / "val" / "notes.txt").write_text("")
    message = _message(image_folder, nested)
    assert "data.evaluation.path" in message and "hold no images" in message
    assert ".jpeg" in message and "'val' holds ['n01440764', 'notes.txt']" in message


# --- flat layout --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["folder", "parent folder", "archive"])
def test_flat_images_with_devkit_labels(
    tmp_path: Path, sample: list[tuple[Path, int]], form: str
) -> None:
    expected = _flat_images(tmp_path / "val", sample)
    devkit = _devkit(tmp_path / "devkit", sample)
    labels = devkit if form == "folder" else devkit.parent
    if form == "archive":
        labels = tmp_path / f"{DEVKIT}.tar.gz"
        with tarfile.open(labels, "w:gz") as archive:
            archive.add(devkit, arcname=DEVKIT)
        shutil.rmtree(devkit)
    items = imagenet_flat(tmp_path / "val", labels)
    assert [path.name for path, _ in items] == sorted(expected)
    assert _labels_by_name(items) == expected


def test_flat_images_with_val_txt(tmp_path: Path, sample: list[tuple[Path, int]]) -> None:
    expected = _flat_images(tmp_path / "val", sample)
    lines = [f"{name} {label}" for name, label in expected.items()]
    lines.append(f"{_val_name(49999)} 7")  # a label for an absent image: ignored
    (tmp_path / "val.txt").write_text("\n".join(lines) + "\n")
    assert _labels_by_name(imagenet_flat(tmp_path / "val", tmp_path / "val.txt")) == expected
    evaluation = {
        "kind": "imagenet_flat",
        "images": str(tmp_path / "val"),
        "labels": str(tmp_path / "val.txt"),
    }
    assert len(_dataset(evaluation, limit=5)) == 5


def test_flat_devkit_errors_say_what_was_found(
    tmp_path: Path, sample: list[tuple[Path, int]]
) -> None:
    _flat_images(tmp_path / "val", sample)
    devkit = _devkit(tmp_path / "devkit", sample, extra_lines=0)
    images = tmp_path / "val"

    # Images the labels do not cover: beyond the ground truth, or not a val file name.
    shutil.copy(sample[0][0], images / _val_name(999))
    shutil.copy(sample[0][0], images / "holiday.jpg")
    message = _message(imagenet_flat, images, devkit)
    assert "data.evaluation.images" in message and "2 of 22 images" in message
    assert _val_name(999) in message and "holiday.jpg" in message
    (images / _val_name(999)).unlink()
    (images / "holiday.jpg").unlink()

    ground_truth = devkit / "data" / GROUND_TRUTH
    lines = ground_truth.read_text().splitlines()
    ground_truth.write_text("\n".join([*lines[:4], "kit fox", *lines[4:]]) + "\n")
    message = _message(imagenet_flat, images, devkit)
    assert "data.evaluation.labels" in message and GROUND_TRUTH in message
    assert "line 5" in message and "'kit fox'" in message
    ground_truth.write_text("\n".join([*lines, "1001"]) + "\n")  # a non-leaf synset's ID
    message = _message(imagenet_flat, images, devkit)
    assert f"line {len(lines) + 1}" in message and "'1001'" in message

    (devkit / "data" / "meta.mat").unlink()
    message = _message(imagenet_flat, images, devkit)
    assert "data.evaluation.labels" in message
    assert str(devkit / "data" / "meta.mat") in message and "missing" in message

    scipy.io.savemat(devkit / "data" / "meta.mat", {"classes": np.arange(3)})
    message = _message(imagenet_flat, images, devkit)
    assert "meta.mat" in message and "'synsets'" in message and "['classes']" in message

    archive = tmp_path / f"{DEVKIT}.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        handle.add(devkit / "data" / GROUND_TRUTH, arcname=f"{DEVKIT}/data/{GROUND_TRUTH}")
    message = _message(imagenet_flat, images, archive)
    assert str(archive) in message and f"{DEVKIT}/data/meta.mat" in message
    archive.write_bytes(b"not a tar file")
    message = _message(imagenet_flat, images, archive)
    assert "data.evaluation.labels" in message and "not a readable devkit archive" in message


def test_flat_label_file_errors_say_what_was_found(
    tmp_path: Path, sample: list[tuple[Path, int]]
) -> None:
    expected = _flat_images(tmp_path / "val", sample)
    images, labels = tmp_path / "val", tmp_path / "val.txt"
    first, *rest = (f"{name} {label}" for name, label in expected.items())

    for bad, found in [("a.JPEG 1000", "'a.JPEG 1000'"), ("a.JPEG cat", "'a.JPEG cat'")]:
        labels.write_text("\n".join([first, bad, *rest]))
        message = _message(imagenet_flat, images, labels)
        assert "data.evaluation.labels" in message and str(labels) in message
        assert "line 2" in message and found in message and "0-999" in message

    labels.write_text("\n".join([first, first, *rest]))
    assert "line 2" in _message(imagenet_flat, images, labels)
    assert "listed twice" in _message(imagenet_flat, images, labels)

    labels.write_text("\n".join(rest))  # the first image has no label
    message = _message(imagenet_flat, images, labels)
    assert "1 of 20 images" in message and first.split()[0] in message

    # The devkit's ground truth alone cannot be mapped to class indices.
    labels.write_text("490\n361\n")
    message = _message(imagenet_flat, images, labels)
    assert (
        "line 1" in message and "'490'" in message and "meta.mat" in message and DEVKIT in message
    )


def test_flat_path_errors_say_what_was_found(tmp_path: Path) -> None:
    message = _message(imagenet_flat, tmp_path / "val", tmp_path / "val.txt")
    assert "data.evaluation.images" in message and "does not exist" in message
    (tmp_path / "val" / "n01440764").mkdir(parents=True)
    message = _message(imagenet_flat, tmp_path / "val", tmp_path / "val.txt")
    assert "data.evaluation.labels" in message and "does not exist" in message
    (tmp_path / "val.txt").write_text("")
    message = _message(imagenet_flat, tmp_path / "val", tmp_path / "val.txt")
    assert "holds no images" in message and "n01440764" in message
    assert "kind: imagenet_folder" in message


# --- end to end and config ----------------------------------------------------------------------


def test_evaluation_loader_yields_devkit_labels(
    tmp_path: Path, sample: list[tuple[Path, int]]
) -> None:
    expected = _flat_images(tmp_path / "val", sample)
    devkit = _devkit(tmp_path, sample)
    evaluation = ImageNetFlatData(images=tmp_path / "val", labels=devkit)
    data = DataSelection(source=evaluation, batch_size=8, limit=18)
    preprocessing = Preprocessing.model_validate(
        {
            "resize": 40,
            "crop_size": 32,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "interpolation": "bilinear",
        }
    )
    batches = list(evaluation_loader(data, preprocessing))
    assert [tuple(images.shape) for images, _ in batches] == [
        (8, 3, 32, 32),
        (8, 3, 32, 32),
        (2, 3, 32, 32),
    ]
    labels = [int(label) for _, batch_labels in batches for label in batch_labels]
    assert labels == [expected[name] for name in sorted(expected)][:18]


def test_config_accepts_the_flat_kind_and_names_a_typo(tmp_path: Path) -> None:
    evaluation = {"kind": "imagenet_flat", "images": str(tmp_path), "labels": str(tmp_path)}
    cfg = validate_config({"data": {"evaluation": evaluation}})
    assert isinstance(cfg.data.evaluation, ImageNetFlatData)
    assert cfg.data.evaluation.labels == tmp_path

    with pytest.raises(ConfigError) as info:
        validate_config({"data": {"evaluation": {**evaluation, "label_file": "val.txt"}}})
    message = str(info.value)
    assert "data.evaluation.imagenet_flat.label_file" in message
    assert "Extra inputs are not permitted" in message

    del evaluation["labels"]
    with pytest.raises(ConfigError, match=r"data\.evaluation\.imagenet_flat\.labels: Field"):
        validate_config({"data": {"evaluation": evaluation}})
