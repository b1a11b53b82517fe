"""ImageNet-layout image files: the foolbox sample, class folders, the flat val folder.

The 20 real ImageNet validation images that ship inside the foolbox wheel (offline quickstart
and tests), an ImageNet-style class-folder tree, and the flat ImageNet validation folder with
devkit or val.txt labels. Each gives (path, canonical class index) pairs.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import re
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import IMAGE_SUFFIXES, DataError

if TYPE_CHECKING:
    import torch

FOOLBOX_NAME = re.compile(r"^imagenet_(\d+)_(\d+)\.jpg$")
IMAGENET_CLASSES = 1000
WNID = re.compile(r"^n\d{8}$")
VAL_IMAGE = re.compile(r"^ILSVRC2012_val_(\d{8})$")
DEVKIT_FOLDER = "ILSVRC2012_devkit_t12"
DEVKIT_GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"


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


def write_imagenet_folder(items: list[tuple[Path, int]], dest: Path) -> int:
    """Copy (image, class index) pairs into an ImageNet-layout folder: ``dest/<wnid>/<file>``.

    The layout of ILSVRC2012 ``train/`` (and of a class-sorted ``val/``), so kind
    ``imagenet_folder`` reads it as it reads the real thing. Written atomically; returns the
    number of images.
    """
    import shutil

    from ..io import atomic_directory

    wnids = imagenet_synsets()
    with atomic_directory(Path(dest)) as staged:
        for path, index in items:
            folder = staged / wnids[index]
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, folder / path.name)
    return len(items)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _visible(folder: Path) -> list[Path]:
    # Hidden entries (.DS_Store, .ipynb_checkpoints) are tool debris, never classes or images.
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _some(names: list[str], count: int = 5) -> str:
    """A short, readable sample of ``names`` for an error message."""
    more = f" and {len(names) - count} more" if len(names) > count else ""
    return f"{names[:count]}{more}"


def _suffixes() -> str:
    return ", ".join(sorted({s.lower() for s in IMAGE_SUFFIXES}))


def _existing_folder(path: Path, field: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"data.evaluation.{field} {str(path)!r} does not exist")
    if not path.is_dir():
        raise DataError(f"data.evaluation.{field} {str(path)!r} is a file, not a folder")
    return path


@functools.cache
def imagenet_synsets() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in canonical order (index i = class i, as torchvision).

    timm ships the list; it is located without importing timm (which is slow).
    """
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("ImageNet class order: the list of synsets comes with timm, not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data/_info/imagenet_synsets.txt"
    if not path.is_file():
        raise DataError(f"ImageNet class order: {str(path)!r} is missing from this timm")
    wnids = tuple(path.read_text().split())
    if len(wnids) != IMAGENET_CLASSES or len(set(wnids)) != IMAGENET_CLASSES:
        raise DataError(f"{path}: expected {IMAGENET_CLASSES} distinct WordNet ids")
    return wnids


def image_folder(root: Path) -> list[tuple[Path, int]]:
    """One sub-folder of images per class (``data.evaluation.path``).

    Folders named by ImageNet-1k WordNet ids get their canonical class index, so a folder
    holding only some of the 1000 classes still labels correctly. Other names fall back to
    the torchvision ImageFolder rule: position in the sorted list of sub-folder names.
    """
    root = _existing_folder(root, "path")
    entries = _visible(root)
    classes = [p.name for p in entries if p.is_dir()]
    if not classes:
        found = [p.name for p in entries]
        hint = ""
        if any(VAL_IMAGE.match(Path(name).stem) for name in found):
            hint = "; for one folder of ILSVRC2012_val_*.JPEG files use kind: imagenet_flat"
        raise DataError(
            f"data.evaluation.path {str(root)!r} has no class sub-folders (found: {found[:5]})"
            + hint
        )
    canonical = {wnid: index for index, wnid in enumerate(imagenet_synsets())}
    known = [name for name in classes if name in canonical]
    if known and len(known) < len(classes):
        others = [name for name in classes if name not in canonical]
        lookalike = [name for name in others if WNID.match(name)]
        detail = (
            f"; {_some(lookalike)} look like WordNet ids but are not ImageNet-1k classes"
            if lookalike
            else ""
        )
        raise DataError(
            f"data.evaluation.path {str(root)!r} mixes ImageNet-1k WordNet-id folders "
            f"({_some(known, 3)}) with other folders ({_some(others)}){detail}; "
            "name every class folder by its wnid (canonical indices) or none (sorted names)"
        )
    index_of = canonical if known else {name: index for index, name in enumerate(classes)}
    items = [
        (path, index_of[name])
        for name in classes
        for path in _visible(root / name)
        if _is_image(path)
    ]
    if not items:
        inside = [p.name for p in _visible(root / classes[0])]
        raise DataError(
            f"data.evaluation.path {str(root)!r}: the {len(classes)} class folders "
            f"({_some(classes, 3)}) hold no images (files ending {_suffixes()}); "
            f"{classes[0]!r} holds {_some(inside)}"
        )
    return items


def _val_number(path: Path) -> int | None:
    """n of ILSVRC2012_val_{n:08d}.<image suffix>, else None."""
    match = VAL_IMAGE.match(path.stem)
    return int(match.group(1)) if match else None


def _devkit_files(labels: Path) -> tuple[bytes, bytes, str]:
    """(ground-truth text, meta.mat bytes, where they came from) of a devkit folder or archive."""
    members = (f"data/{DEVKIT_GROUND_TRUTH}", "data/meta.mat")
    if labels.is_dir():
        # Accept the devkit folder itself or the folder it was unpacked into.
        root = labels / DEVKIT_FOLDER if (labels / DEVKIT_FOLDER).is_dir() else labels
        for member in members:
            if not (root / member).is_file():
                found = [p.name for p in _visible(labels)]
                raise DataError(
                    f"data.evaluation.labels: devkit file {str(root / member)!r} is missing "
                    f"(found in {str(labels)!r}: {_some(found)})"
                )
        gt, meta = ((root / member).read_bytes() for member in members)
        return gt, meta, str(root)
    try:
        with tarfile.open(labels, "r:*") as archive:
            names = archive.getnames()
            found = {}
            for member in members:
                match = next((n for n in names if n == member or n.endswith("/" + member)), None)
                handle = archive.extractfile(match) if match else None
                if handle is None:
                    raise DataError(
                        f"data.evaluation.labels: archive {str(labels)!r} lacks "
                        f"{DEVKIT_FOLDER}/{member} (members: {_some(names)})"
                    )
                found[member] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(
            f"data.evaluation.labels {str(labels)!r} is not a readable devkit archive: {error}"
        ) from error
    return found[members[0]], found[members[1]], str(labels)


def _devkit_leaf_wnids(meta: bytes, where: str) -> dict[int, str]:
    """ILSVRC2012_ID -> WordNet id of the 1000 leaf synsets in the devkit's meta.mat."""
    import numpy as np
    import scipy.io

    path = f"{where}/data/meta.mat"
    try:
        content = scipy.io.loadmat(io.BytesIO(meta), squeeze_me=True)
    except Exception as error:  # scipy raises several types for a damaged file
        raise DataError(f"data.evaluation.labels: {path} is not a MATLAB file: {error}") from error
    synsets = content.get("synsets")
    fields = ("ILSVRC2012_ID", "WNID", "num_children")
    names = getattr(getattr(synsets, "dtype", None), "names", None) or ()
    if synsets is None or not set(fields) <= set(names):
        found = sorted(k for k in content if not k.startswith("__"))
        raise DataError(
            f"data.evaluation.labels: {path} needs a 'synsets' struct with fields {list(fields)} "
            f"(found variables {found}, synsets fields {list(names)})"
        )
    synsets = np.atleast_1d(synsets)
    # Non-leaf synsets (num_children > 0) group classes; only the leaves are the 1000 classes.
    leaves = {
        int(entry["ILSVRC2012_ID"]): str(entry["WNID"])
        for entry in synsets
        if int(entry["num_children"]) == 0
    }
    canonical = set(imagenet_synsets())
    unknown = sorted(wnid for wnid in leaves.values() if wnid not in canonical)
    if unknown:
        raise DataError(
            f"data.evaluation.labels: {path} has leaf synsets outside ImageNet-1k: {_some(unknown)}"
        )
    return leaves


def devkit_labels(labels: Path) -> dict[int, int]:
    """val image number (1-based) -> canonical class index, from the ILSVRC2012 devkit."""
    gt, meta, where = _devkit_files(labels)
    leaves = _devkit_leaf_wnids(meta, where)
    canonical = {wnid: index for index, wnid in enumerate(imagenet_synsets())}
    path = f"{where}/data/{DEVKIT_GROUND_TRUTH}"
    result = {}
    # rstrip: a trailing blank line is harmless; a blank line between labels is not.
    for number, line in enumerate(gt.decode("utf-8", "replace").rstrip().splitlines(), start=1):
        text = line.strip()
        if not text.isdigit() or int(text) not in leaves:
            raise DataError(
                f"data.evaluation.labels: {path} line {number}: expected an ILSVRC2012_ID of a "
                f"leaf synset in meta.mat (1-{IMAGENET_CLASSES}), found {line!r}"
            )
        result[number] = canonical[leaves[int(text)]]
    if not result:
        raise DataError(f"data.evaluation.labels: {path} is empty")
    return result


def label_file(path: Path) -> dict[str, int]:
    """file name -> canonical class index from '<filename> <index>' lines (caffe val.txt)."""
    result: dict[str, int] = {}
    lines = path.read_text(errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 1 and parts[0].isdigit():
            raise DataError(
                f"data.evaluation.labels: {str(path)!r} line {number}: found only {line!r}, "
                "expected '<filename> <index>'; a devkit ground-truth file (ILSVRC2012_IDs) "
                f"needs meta.mat too: set labels to the {DEVKIT_FOLDER} folder or archive"
            )
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) >= IMAGENET_CLASSES:
            raise DataError(
                f"data.evaluation.labels: {str(path)!r} line {number}: expected "
                f"'<filename> <index>' with index 0-{IMAGENET_CLASSES - 1}, found {line!r}"
            )
        if parts[0] in result:
            raise DataError(
                f"data.evaluation.labels: {str(path)!r} line {number}: {parts[0]!r} is listed twice"
            )
        result[parts[0]] = int(parts[1])
    if not result:
        raise DataError(f"data.evaluation.labels: {str(path)!r} has no '<filename> <index>' lines")
    return result


def imagenet_flat(images: Path, labels: Path) -> list[tuple[Path, int]]:
    """ImageNet validation images in one folder, labelled by the devkit or a val.txt file.

    ``labels`` is the ILSVRC2012_devkit_t12 folder or .tar.gz (ground-truth line i labels
    ILSVRC2012_val_{i:08d}.JPEG), or a text file of '<filename> <index>' lines (0-based
    canonical indices). A subset of the 50,000 images is fine; an image without a label is not.
    """
    images = _existing_folder(images, "images")
    labels = Path(labels)
    if not labels.exists():
        raise DataError(f"data.evaluation.labels {str(labels)!r} does not exist")
    entries = _visible(images)
    files = [p for p in entries if _is_image(p)]
    if not files:
        subfolders = [p.name for p in entries if p.is_dir()]
        hint = "; for one sub-folder per class use kind: imagenet_folder" if subfolders else ""
        raise DataError(
            f"data.evaluation.images {str(images)!r} holds no images (files ending "
            f"{_suffixes()}; found: {_some([p.name for p in entries])}){hint}"
        )
    if labels.is_dir() or labels.name.endswith((".tar.gz", ".tgz", ".tar")):
        by_number = devkit_labels(labels)
        labelled = [(path, by_number.get(_val_number(path) or 0)) for path in files]
    else:
        by_name = label_file(labels)
        labelled = [(path, by_name.get(path.name)) for path in files]
    unlabelled = [path.name for path, label in labelled if label is None]
    if unlabelled:
        raise DataError(
            f"data.evaluation.images: {len(unlabelled)} of {len(files)} images in "
            f"{str(images)!r} have no label in data.evaluation.labels {str(labels)!r} "
            f"(e.g. {_some(unlabelled)})"
        )
    # Labels for images that are absent are fine: a subset of the 50,000 is evaluated.
    return [(path, label) for path, label in labelled if label is not None]


def image_files_dataset(items: list[tuple[Path, int]], transform: Any) -> torch.utils.data.Dataset:
    """Images read from disk on access, ``transform``ed, with their class index."""
    import torch
    from PIL import Image

    class _Dataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(items)

        def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
            path, label = items[index]
            with Image.open(path) as image:
                return transform(image.convert("RGB")), label

    return _Dataset()
