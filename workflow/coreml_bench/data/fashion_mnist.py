"""Fashion-MNIST as Debian's ``dataset-fashion-mnist`` package installs it (IDX files).

Real images that install offline: the training-time study and the tests train on them.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import DataError

if TYPE_CHECKING:
    import numpy as np

FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# IDX type codes (http://yann.lecun.com/exdb/mnist/): only unsigned bytes occur in MNIST files.
_IDX_UBYTE = 0x08


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
