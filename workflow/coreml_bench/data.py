"""Data: labelled images, the eval transform and the loaders built from them.

Three sources: the 20 real ImageNet validation images that ship inside the foolbox wheel
(offline quickstart and tests), an ImageNet-style class-folder tree, and Fashion-MNIST as
Debian's ``dataset-fashion-mnist`` package installs it (real images for training-time rows).
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPEG"}
FOOLBOX_NAME = re.compile(r"^imagenet_(\d+)_(\d+)\.jpg$")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# IDX type codes (http://yann.lecun.com/exdb/mnist/): only unsigned bytes occur in MNIST files.
_IDX_UBYTE = 0x08


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


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format: magic, dimensions, unsigned bytes), gzipped or not."""
    import numpy as np

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE:
        raise DataError(f"{path} is not an unsigned-byte IDX file (header {data[:4].hex()})")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} but holds {len(data) - offset} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def fashion_mnist(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 N×28×28, labels int64 N) of one split."""
    import numpy as np

    root = Path(root)
    names = FASHION_MNIST_FILES[split]
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        found = sorted(p.name for p in root.iterdir())[:6] if root.is_dir() else "no such folder"
        raise DataError(
            f"Fashion-MNIST {split} split: {missing} not in {str(root)!r} (found: {found}); "
            "on Debian: apt-get install dataset-fashion-mnist"
        )
    images, labels = (read_idx(root / name) for name in names)
    if len(images) != len(labels):
        raise DataError(f"{root}: {len(images)} images but {len(labels)} labels ({split})")
    return images, labels.astype(np.int64)


def labelled_images(data_cfg: dict[str, Any]) -> list[tuple[Path, int]]:
    evaluation = data_cfg["evaluation"]
    if evaluation["kind"] == "foolbox_imagenet_sample":
        items = foolbox_imagenet_sample()
    elif evaluation["kind"] == "imagenet_folder":
        items = image_folder(Path(evaluation["path"]))
    else:
        raise DataError(f"data.evaluation.kind {evaluation['kind']!r} is not a set of image files")
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


class ArrayImages:
    """A torch Dataset over uint8 images in memory (N×H×W grey or N×H×W×C), with a transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Any) -> None:
        import torch

        pixels = torch.from_numpy(images.copy())
        # tv_tensors layout is C×H×W.
        self.images = pixels[:, None] if pixels.ndim == 3 else pixels.permute(0, 3, 1, 2)
        self.labels = torch.from_numpy(labels)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from torchvision import tv_tensors

        return self.transform(tv_tensors.Image(self.images[index])), int(self.labels[index])


def evaluation_loader(
    data_cfg: dict[str, Any], preprocessing: dict[str, Any]
) -> torch.utils.data.DataLoader:
    """The evaluation set of ``data_cfg`` (``DataConfig`` as JSON), eval-transformed, in order."""
    import torch

    evaluation = data_cfg["evaluation"]
    if evaluation["kind"] != "fashion_mnist":
        return make_loader(labelled_images(data_cfg), preprocessing, data_cfg["batch_size"])
    images, labels = fashion_mnist(Path(evaluation["root"]), evaluation["split"])
    limit = data_cfg.get("limit")
    dataset = ArrayImages(images[:limit], labels[:limit], eval_transform(preprocessing))
    return torch.utils.data.DataLoader(dataset, batch_size=data_cfg["batch_size"], shuffle=False)
