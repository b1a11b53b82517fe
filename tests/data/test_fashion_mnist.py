"""Fashion-MNIST as Debian installs it: the IDX reader, the splits, the evaluation loader.

Needs Debian's ``dataset-fashion-mnist`` (``.ci/run`` installs it).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import fashion
import numpy as np
import pytest
from coreml_bench.data import DataError, evaluation_loader
from coreml_bench.data.fashion_mnist import fashion_mnist, read_idx
from fashion import FASHION_ROOT


@pytest.fixture(scope="module", autouse=True)
def _fashion_mnist_installed() -> None:
    fashion.require_fashion_mnist()


def test_fashion_mnist_splits_are_real_images() -> None:
    images, labels = fashion_mnist(FASHION_ROOT, "train")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert sorted(np.unique(labels).tolist()) == list(range(10))
    assert np.bincount(labels).tolist() == [6000] * 10
    test_images, _ = fashion_mnist(FASHION_ROOT, "test")
    assert test_images.shape == (10000, 28, 28)
    assert 0.25 < images.mean() / 255 < 0.32  # the published mean is 0.286


def test_idx_reader_rejects_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "ok-idx1-ubyte.gz"
    with gzip.open(good, "wb") as handle:
        handle.write(bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([7, 8, 9]))
    assert read_idx(good).tolist() == [7, 8, 9]
    short = tmp_path / "short-idx1-ubyte"
    short.write_bytes(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + bytes([1]))
    with pytest.raises(DataError, match=r"header says \(5,\) but holds 1 bytes"):
        read_idx(short)
    with pytest.raises(DataError, match="not an unsigned-byte IDX file"):
        (tmp_path / "float-idx").write_bytes(bytes([0, 0, 0x0D, 1, 0, 0, 0, 0]))
        read_idx(tmp_path / "float-idx")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist(tmp_path, "train")


def test_evaluation_loader_normalises_grey_images() -> None:
    loader = evaluation_loader(fashion.evaluation(), fashion.preprocessing())
    images, labels = next(iter(loader))
    assert images.shape == (200, 1, 28, 28) and labels.shape == (200,)
    assert abs(float(images.mean())) < 0.3 and 0.7 < float(images.std()) < 1.3
