"""The data kinds the workflow reads: one registry entry each (parameters, task, checks, reader).

Readers import torch/PIL lazily (inside the functions they call), so the Snakefile can read
this module cheaply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..schema_base import StrictModel
from .detection import deepforest_sample
from .fashion_mnist import FASHION_MNIST_FILES, ArrayImages, fashion_mnist
from .imagenet import (
    IMAGENET_CLASSES,
    foolbox_imagenet_sample,
    image_files_dataset,
    image_folder,
    imagenet_flat,
)
from .registry import DATA_KINDS, DataKind

# ------------------------------------------------------------------------------ parameters


class FoolboxSampleData(StrictModel):
    """The 20 real ImageNet validation images shipped in the foolbox wheel (offline)."""

    kind: Literal["foolbox_imagenet_sample"] = "foolbox_imagenet_sample"


class ImageFolderData(StrictModel):
    """An ImageNet-style folder: one sub-folder per class, sorted names = class indices."""

    kind: Literal["imagenet_folder"] = "imagenet_folder"
    path: Path


class ImageFolderTrainingData(ImageFolderData):
    """An ImageNet-style training folder (e.g. ILSVRC2012 ``train/``: one folder per wnid)."""


class ImageNetFlatData(StrictModel):
    """ImageNet validation images in one folder (ILSVRC2012_val_00000001.JPEG, ...) + labels."""

    kind: Literal["imagenet_flat"] = "imagenet_flat"
    images: Path = Field(description="folder of ILSVRC2012_val_XXXXXXXX.JPEG images")
    labels: Path = Field(
        description="the ILSVRC2012_devkit_t12 folder or .tar.gz, or a text file of "
        "'<filename> <index>' lines (0-based class indices, the caffe val.txt convention)"
    )


class FashionMnistData(StrictModel):
    """Fashion-MNIST IDX files, as Debian's ``dataset-fashion-mnist`` package installs them."""

    kind: Literal["fashion_mnist"] = "fashion_mnist"
    root: Path = Path("/usr/share/datasets/fashion-mnist")
    split: Literal["train", "test"] = "test"


class FashionMnistTrainingData(FashionMnistData):
    """Fashion-MNIST as training data: the same files, the train split by default."""

    split: Literal["train", "test"] = "train"


class CocoData(StrictModel):
    """COCO-style detection data: an image folder and its instances json (e.g. val2017)."""

    kind: Literal["coco"] = "coco"
    images: Path = Field(description="folder of the images the json lists (e.g. val2017/)")
    annotations: Path = Field(description="instances json, e.g. instances_val2017.json")


class CocoTrainingData(CocoData):
    """COCO-style training data, e.g. train2017 with instances_train2017.json."""


class DeepForestSampleData(StrictModel):
    """Offline detection sample: two real aerial images with 98 tree boxes (one category),
    read from the deepforest wheel that ``bash envs/install.sh`` downloads, scored as COCO."""

    kind: Literal["deepforest_sample"] = "deepforest_sample"
    wheel_dir: Path = Field(
        default=Path(".venv/fixtures"), description="folder holding deepforest-*.whl"
    )


class DeepForestTrainingData(DeepForestSampleData):
    """The deepforest sample as training data (the same two images: a path check, not a
    benchmark)."""


# ---------------------------------------------------------------------------------- checks


def _folders_and_files(folders: dict[str, Path], files: dict[str, Path]) -> list[tuple[str, str]]:
    problems = [
        (field, f"folder {str(folder)!r} does not exist")
        for field, folder in folders.items()
        if not folder.is_dir()
    ]
    problems += [
        (field, f"{str(path)!r} does not exist")
        for field, path in files.items()
        if not path.exists()
    ]
    return problems


def _check_fashion_mnist(params: FashionMnistData) -> list[tuple[str, str]]:
    names = FASHION_MNIST_FILES[params.split]
    missing = [name for name in names if not (params.root / name).is_file()]
    if not missing:
        return []
    return [
        (
            "root",
            f"{str(params.root)!r} lacks {missing} (on Debian: apt-get install "
            "dataset-fashion-mnist)",
        )
    ]


def _check_deepforest(params: DeepForestSampleData) -> list[tuple[str, str]]:
    if list(params.wheel_dir.glob("deepforest-*.whl")):
        return []
    return [
        (
            "wheel_dir",
            f"no deepforest-*.whl in {str(params.wheel_dir)!r} (`bash envs/install.sh` "
            "downloads it)",
        )
    ]


# --------------------------------------------------------------------------------- readers


def _image_files(items: list[tuple[Path, int]], transform: Any, limit: int | None) -> Any:
    return image_files_dataset(items[:limit] if limit else items, transform)


def _foolbox_dataset(params: FoolboxSampleData, transform: Any, limit: int | None) -> Any:
    return _image_files(foolbox_imagenet_sample(), transform, limit)


def _folder_dataset(params: ImageFolderData, transform: Any, limit: int | None) -> Any:
    return _image_files(image_folder(params.path), transform, limit)


def _flat_dataset(params: ImageNetFlatData, transform: Any, limit: int | None) -> Any:
    return _image_files(imagenet_flat(params.images, params.labels), transform, limit)


def _fashion_dataset(params: FashionMnistData, transform: Any, limit: int | None) -> Any:
    images, labels = fashion_mnist(params.root, params.split)
    return ArrayImages(images[:limit], labels[:limit], transform)


def _coco_files(params: CocoData, scratch: Path) -> tuple[Path, Path]:
    return params.images, params.annotations


def _deepforest_files(params: DeepForestSampleData, scratch: Path) -> tuple[Path, Path]:
    return deepforest_sample(params.wheel_dir, scratch)


def _folder_classes(params: ImageFolderData) -> int | None:
    """1000 for wnid-named folders (canonical ImageNet indices), else the folder count."""
    from .imagenet import imagenet_synsets

    try:
        names = [p.name for p in params.path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:  # not there (yet), or not a folder: the path check says so
        return None
    synsets = set(imagenet_synsets())
    if names and all(name in synsets for name in names):
        return len(synsets)
    return len(names) or None


# ------------------------------------------------------------------------------- registry

DATA_KINDS.add(
    "foolbox_imagenet_sample",
    DataKind(
        FoolboxSampleData,
        "classification",
        "20 real ImageNet validation images from the foolbox wheel (offline)",
        dataset=_foolbox_dataset,
        num_classes=lambda p: IMAGENET_CLASSES,
    ),
)
DATA_KINDS.add(
    "imagenet_folder",
    DataKind(
        ImageFolderData,
        "classification",
        "class folders (WordNet ids map to canonical ImageNet indices)",
        check=lambda p: _folders_and_files({"path": p.path}, {}),
        dataset=_folder_dataset,
        training_params=ImageFolderTrainingData,
        num_classes=_folder_classes,
    ),
)
DATA_KINDS.add(
    "imagenet_flat",
    DataKind(
        ImageNetFlatData,
        "classification",
        "ILSVRC2012_val_*.JPEG in one folder + devkit or '<file> <index>' labels",
        check=lambda p: _folders_and_files({"images": p.images}, {"labels": p.labels}),
        dataset=_flat_dataset,
        num_classes=lambda p: IMAGENET_CLASSES,
    ),
)
DATA_KINDS.add(
    "fashion_mnist",
    DataKind(
        FashionMnistData,
        "classification",
        "Fashion-MNIST IDX files (Debian's dataset-fashion-mnist)",
        check=_check_fashion_mnist,
        dataset=_fashion_dataset,
        training_params=FashionMnistTrainingData,
        num_classes=lambda p: 10,
    ),
)
DATA_KINDS.add(
    "coco",
    DataKind(
        CocoData,
        "detection",
        "COCO images + instances json, scored by pycocotools (mAP@[.5:.95])",
        check=lambda p: _folders_and_files({"images": p.images}, {"annotations": p.annotations}),
        coco_files=_coco_files,
        training_params=CocoTrainingData,
    ),
)
DATA_KINDS.add(
    "deepforest_sample",
    DataKind(
        DeepForestSampleData,
        "detection",
        "two real aerial images with 98 tree boxes from the deepforest wheel (offline)",
        check=_check_deepforest,
        coco_files=_deepforest_files,
        training_params=DeepForestTrainingData,
        num_classes=lambda p: 1,
    ),
)
