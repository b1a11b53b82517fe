"""Evaluation data: labelled image lists and the eval transform.

Two layouts: the 20 real ImageNet validation images that ship inside the foolbox wheel
(offline quickstart and tests) and an ImageNet-style class-folder tree.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPEG"}
FOOLBOX_NAME = re.compile(r"^imagenet_(\d+)_(\d+)\.jpg$")


class DataError(ValueError):
    """The evaluation data is missing or not in the layout the config says."""


def foolbox_imagenet_sample() -> list[tuple[Path, int]]:
    """(path, ImageNet class index) for foolbox/data/imagenet_XX_LABEL.jpg."""
    try:
        import foolbox
    except ImportError as error:
        raise DataError("data.evaluation.kind 'foolbox_imagenet_sample' needs foolbox") from error
    folder = Path(foolbox.__file__).parent / "data"
    items = []
    for path in sorted(folder.glob("imagenet_*.jpg")):
        match = FOOLBOX_NAME.match(path.name)
        if match:
            items.append((path, int(match.group(2))))
    if not items:
        raise DataError(f"no imagenet_XX_LABEL.jpg files found in {folder}")
    return items


def image_folder(root: Path) -> list[tuple[Path, int]]:
    """Class sub-folders sorted by name give the class indices (torchvision ImageFolder rule)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.evaluation.path {str(root)!r} does not exist or is not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        found = sorted(p.name for p in root.iterdir())[:5]
        raise DataError(
            f"data.evaluation.path {str(root)!r} has no class sub-folders (found: {found})"
        )
    items = []
    for index, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            if path.suffix in IMAGE_SUFFIXES:
                items.append((path, index))
    if not items:
        raise DataError(f"data.evaluation.path {str(root)!r}: class folders contain no images")
    return items


def labelled_images(data_cfg: dict[str, Any]) -> list[tuple[Path, int]]:
    evaluation = data_cfg["evaluation"]
    if evaluation["kind"] == "foolbox_imagenet_sample":
        items = foolbox_imagenet_sample()
    elif evaluation["kind"] == "imagenet_folder":
        items = image_folder(Path(evaluation["path"]))
    else:
        raise DataError(f"unknown data.evaluation.kind {evaluation['kind']!r}")
    limit = data_cfg.get("limit")
    return items[:limit] if limit else items


def eval_transform(preprocessing: dict[str, Any]) -> Any:
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import v2 as transforms

    return transforms.Compose(
        [
            transforms.ToImage(),
            transforms.Resize(
                preprocessing["resize"],
                interpolation=InterpolationMode(preprocessing["interpolation"]),
                antialias=True,
            ),
            transforms.CenterCrop(preprocessing["crop_size"]),
            transforms.ToDtype(torch.float32, scale=True),
            transforms.Normalize(list(preprocessing["mean"]), list(preprocessing["std"])),
        ]
    )


def make_loader(
    items: list[tuple[Path, int]], preprocessing: dict[str, Any], batch_size: int
) -> torch.utils.data.DataLoader:
    import torch
    from PIL import Image

    transform = eval_transform(preprocessing)

    class _Dataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(items)

        def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
            path, label = items[index]
            with Image.open(path) as image:
                return transform(image.convert("RGB")), label

    return torch.utils.data.DataLoader(_Dataset(), batch_size=batch_size, shuffle=False)
