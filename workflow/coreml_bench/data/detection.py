"""COCO detection data (images + instances json) and mAP computed by pycocotools.

The detector sees each whole image resized to ``input_size``×``input_size`` (no crop), so a box
predicted in input pixels maps back to the original image by multiplying x by ``scale[0]`` and y
by ``scale[1]``; ``coco_results`` does that and turns class channels into COCO category ids.
``coco_map`` scores COCO results-format detections with ``COCO``/``COCOeval`` only, restricted to
the images actually evaluated. ``voc_to_coco`` converts Pascal-VOC xml files (the tests' real
aerial images from the deepforest wheel) into a COCO instances dict.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import IMAGE_SUFFIXES, DataError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

IMAGES_FIELD = "data.evaluation.images"
ANNOTATIONS_FIELD = "data.evaluation.annotations"
INSTANCES_KEYS = ("images", "annotations", "categories")
# COCOeval.stats order for iouType "bbox" (pycocotools cocoeval.py, summarize()).
STATS_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large")


def load_instances(annotations: Path) -> dict[str, Any]:
    """The parsed instances json, checked to be a COCO detection file with boxes and classes."""
    annotations = Path(annotations)
    if not annotations.is_file():
        where = annotations.parent
        found = sorted(p.name for p in where.iterdir())[:6] if where.is_dir() else "no such folder"
        raise DataError(
            f"{ANNOTATIONS_FIELD} {str(annotations)!r} does not exist or is not a file "
            f"(found in {str(where)!r}: {found})"
        )
    try:
        data = json.loads(annotations.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{ANNOTATIONS_FIELD} {str(annotations)!r} is not JSON: {error}") from error
    keys = sorted(data) if isinstance(data, dict) else type(data).__name__
    if not isinstance(data, dict) or any(key not in data for key in INSTANCES_KEYS):
        raise DataError(
            f"{ANNOTATIONS_FIELD} {str(annotations)!r} is not a COCO instances file: it needs "
            f"keys {list(INSTANCES_KEYS)} but has {keys}"
        )
    if not data["images"]:
        raise DataError(f"{ANNOTATIONS_FIELD} {str(annotations)!r} lists no images")
    if not data["categories"]:
        raise DataError(f"{ANNOTATIONS_FIELD} {str(annotations)!r} has no categories")
    if not data["annotations"]:
        raise DataError(f"{ANNOTATIONS_FIELD} {str(annotations)!r} has no annotations")
    first = data["annotations"][0]
    if not isinstance(first, dict) or "bbox" not in first or "category_id" not in first:
        # Captions, panoptic and other COCO files have "annotations" without boxes.
        found = sorted(first) if isinstance(first, dict) else type(first).__name__
        raise DataError(
            f"{ANNOTATIONS_FIELD} {str(annotations)!r} is not a COCO instances file: its "
            f"annotations have no 'bbox'/'category_id' (an annotation has keys {found})"
        )
    return data


def category_ids(annotations: Path) -> list[int]:
    """Sorted COCO category ids: the detector's class channel i is category ``ids[i]``.

    COCO's 80 classes have non-contiguous ids in 1..90, so channel index != category id.
    """
    return _sorted_category_ids(load_instances(annotations))


def _sorted_category_ids(data: dict[str, Any]) -> list[int]:
    return sorted(int(category["id"]) for category in data["categories"])


def _check_images_folder(images: Path) -> Path:
    images = Path(images)
    if not images.is_dir():
        raise DataError(f"{IMAGES_FIELD} {str(images)!r} does not exist or is not a folder")
    return images


def _selected_images(
    data: dict[str, Any], images: Path, annotations: Path, limit: int | None
) -> list[dict[str, Any]]:
    """The image records to evaluate (sorted by id, first ``limit``), all present on disk."""
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise DataError(f"data.limit must be a positive integer or null, got {limit!r}")
    # Sorted by id so a limit picks the same images whatever order the json lists them in.
    records = sorted(data["images"], key=lambda record: int(record["id"]))[:limit]
    missing = [r["file_name"] for r in records if not (images / r["file_name"]).is_file()]
    if missing:
        found = sorted(p.name for p in images.iterdir())[:5]
        raise DataError(
            f"{IMAGES_FIELD} {str(images)!r}: {len(missing)} of {len(records)} images listed in "
            f"{str(annotations)!r} are missing, e.g. {missing[:5]} (the folder holds {found} ...)"
        )
    return records


def _preprocess(input_size: int, mean: Sequence[float], std: Sequence[float]) -> Any:
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import v2 as transforms

    # The whole image squashed to a square (no crop) so every box stays inside the input.
    return transforms.Compose(
        [
            transforms.ToImage(),
            transforms.Resize(
                (input_size, input_size),
                interpolation=InterpolationMode.BILINEAR,
                antialias=True,
            ),
            transforms.ToDtype(torch.float32, scale=True),
            transforms.Normalize(list(mean), list(std)),
        ]
    )


@functools.cache
def _coco_images_class() -> type:
    """Defines CocoImages on first use so importing this module does not import torch."""
    import torch
    from PIL import Image

    class CocoImages(torch.utils.data.Dataset):
        """Preprocessed COCO images with the meta needed to map boxes back to the originals."""

        def __init__(
            self,
            images: Path,
            records: list[dict[str, Any]],
            *,
            input_size: int,
            mean: Sequence[float],
            std: Sequence[float],
        ) -> None:
            self.images = Path(images)
            self.records = records
            self.input_size = input_size
            self.mean = tuple(mean)
            self.std = tuple(std)
            self.transform = _preprocess(input_size, self.mean, self.std)

        @property
        def image_ids(self) -> list[int]:
            """Ids of the images this dataset yields: pass them to ``coco_map(image_ids=...)``."""
            return [int(record["id"]) for record in self.records]

        def __len__(self) -> int:
            return len(self.records)

        def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
            record = self.records[index]
            path = self.images / record["file_name"]
            with Image.open(path) as image:
                width, height = image.size
                pixels = self.transform(image.convert("RGB"))
            # Ground-truth boxes are in the json's pixel frame; a resized copy on disk would
            # silently misplace every predicted box.
            if (width, height) != (int(record["width"]), int(record["height"])):
                raise DataError(
                    f"{IMAGES_FIELD}: {path.name} is {width}×{height} on disk but the annotations "
                    f"say {record['width']}×{record['height']}"
                )
            meta = {
                "image_id": int(record["id"]),
                "orig_size": (height, width),
                "scale": (width / self.input_size, height / self.input_size),
            }
            return pixels, meta

    # Picklable by name (DataLoader workers under spawn): module __getattr__ resolves it.
    CocoImages.__module__ = __name__
    CocoImages.__qualname__ = "CocoImages"
    return CocoImages


@functools.cache
def _coco_training_class() -> type:
    """Defines CocoTrainingImages on first use (no torch import with this module)."""
    import torch
    from PIL import Image
    from torchvision import tv_tensors
    from torchvision.transforms import v2 as transforms

    class CocoTrainingImages(torch.utils.data.Dataset):
        """(image, dense targets) pairs for a detector: each image squashed to the input
        square as in evaluation, optionally flipped with its boxes (torchvision v2 moves the
        boxes with the pixels), then encoded by the architecture's ``encode`` function."""

        def __init__(
            self,
            images: Path,
            records: list[dict[str, Any]],
            boxes: dict[int, list[tuple[list[float], int]]],
            *,
            input_size: int,
            mean: Sequence[float],
            std: Sequence[float],
            flip: bool,
            encode: Any,
        ) -> None:
            self.images, self.records, self.boxes = Path(images), records, boxes
            self.input_size, self.encode = input_size, encode
            steps: list[Any] = [
                transforms.ToImage(),
                transforms.Resize((input_size, input_size), antialias=True),
            ]
            if flip:
                steps.append(transforms.RandomHorizontalFlip())
            steps += [
                transforms.ToDtype(torch.float32, scale=True),
                transforms.Normalize(list(mean), list(std)),
            ]
            self.transform = transforms.Compose(steps)

        def __len__(self) -> int:
            return len(self.records)

        def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            record = self.records[index]
            with Image.open(self.images / record["file_name"]) as image:
                width, height = image.size
                objects = self.boxes.get(int(record["id"]), [])
                xywh = torch.tensor([box for box, _ in objects], dtype=torch.float32)
                boxes = tv_tensors.BoundingBoxes(
                    xywh.reshape(-1, 4), format="XYWH", canvas_size=(height, width)
                )
                pixels, boxes = self.transform(image.convert("RGB"), boxes)
            xyxy = transforms.functional.convert_bounding_box_format(
                boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY
            )
            labels = torch.tensor([channel for _, channel in objects], dtype=torch.long)
            return pixels, self.encode(xyxy.as_subclass(torch.Tensor), labels)

    CocoTrainingImages.__module__ = __name__
    CocoTrainingImages.__qualname__ = "CocoTrainingImages"
    return CocoTrainingImages


def coco_training_dataset(
    images: Path,
    annotations: Path,
    *,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    flip: bool,
    encode: Any,
    limit: int | None = None,
) -> torch.utils.data.Dataset:
    """The first ``limit`` images (by id) of a COCO instances file as training pairs.

    Crowd regions (``iscrowd``) are not objects to learn: COCO's own evaluation ignores them.
    Class channel i is category ``category_ids(annotations)[i]``, as in evaluation.
    """
    images = _check_images_folder(images)
    data = load_instances(annotations)
    records = _selected_images(data, images, Path(annotations), limit)
    categories = _sorted_category_ids(data)
    channel = {cid: i for i, cid in enumerate(categories)}
    boxes: dict[int, list[tuple[list[float], int]]] = {}
    for item in data["annotations"]:
        if item.get("iscrowd", 0):
            continue
        boxes.setdefault(int(item["image_id"]), []).append(
            ([float(v) for v in item["bbox"]], channel[int(item["category_id"])])
        )
    dataset = _coco_training_class()(
        images,
        records,
        boxes,
        input_size=input_size,
        mean=mean,
        std=std,
        flip=flip,
        encode=encode,
    )
    dataset.category_ids = categories
    return dataset


def __getattr__(name: str) -> Any:
    if name == "CocoImages":
        return _coco_images_class()
    if name == "CocoTrainingImages":
        return _coco_training_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def coco_dataset(
    images: Path,
    annotations: Path,
    *,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    limit: int | None = None,
) -> torch.utils.data.Dataset:
    """A ``CocoImages`` over the first ``limit`` images (by id) of a COCO instances file."""
    images = _check_images_folder(images)
    data = load_instances(annotations)
    records = _selected_images(data, images, Path(annotations), limit)
    dataset = _coco_images_class()(images, records, input_size=input_size, mean=mean, std=std)
    # Parsed once here: an instances json can be hundreds of MB (train2017).
    dataset.category_ids = _sorted_category_ids(data)
    return dataset


def collate(
    batch: list[tuple[torch.Tensor, dict[str, Any]]],
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Stack the images; keep the metas as a list (default collate would tensorise the tuples)."""
    import torch

    return torch.stack([pixels for pixels, _ in batch]), [meta for _, meta in batch]


def coco_loader(
    images: Path,
    annotations: Path,
    *,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    limit: int | None = None,
) -> torch.utils.data.DataLoader:
    """Batches (B×3×S×S float, [meta, ...]) in image-id order; ``loader.dataset.image_ids``."""
    import torch

    dataset = coco_dataset(
        images, annotations, input_size=input_size, mean=mean, std=std, limit=limit
    )
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, collate_fn=collate
    )


def coco_results(
    meta: dict[str, Any],
    boxes: Iterable[Sequence[float]],
    scores: Iterable[float],
    classes: Iterable[int],
    categories: Sequence[int],
) -> list[dict[str, Any]]:
    """COCO results for one image from boxes [x1, y1, x2, y2] in input pixels.

    ``classes`` are class-channel indices; ``categories`` is ``category_ids(annotations)``.
    Accepts lists, numpy arrays or tensors (each element is converted with float/int).
    """
    sx, sy = meta["scale"]
    results = []
    for box, score, channel in zip(boxes, scores, classes, strict=True):
        x1, y1, x2, y2 = (float(v) for v in box)
        results.append(
            {
                "image_id": int(meta["image_id"]),
                "category_id": int(categories[int(channel)]),
                "bbox": [x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy],
                "score": float(score),
            }
        )
    return results


def _check_detections(
    detections: list[dict[str, Any]], image_ids: set[int], category_set: set[int]
) -> list[dict[str, Any]]:
    """Plain-typed copies (loadRes mutates its input) after checking ids, boxes and scores."""
    checked = []
    stray_images: set[int] = set()
    stray_categories: set[int] = set()
    for index, det in enumerate(detections):
        try:
            image_id, category_id = int(det["image_id"]), int(det["category_id"])
            bbox = [float(v) for v in det["bbox"]]
            score = float(det["score"])
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(
                f"detection {index} is not COCO results format "
                f"{{image_id, category_id, bbox: [x, y, w, h], score}}: {det!r}"
            ) from error
        if len(bbox) != 4 or not all(map(math.isfinite, [*bbox, score])):
            raise DataError(f"detection {index} has a bad bbox or score: {det!r}")
        if image_id not in image_ids:
            stray_images.add(image_id)
        if category_id not in category_set:
            stray_categories.add(category_id)
        checked.append(
            {"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score}
        )
    if stray_images:
        raise DataError(
            f"detections for image ids {sorted(stray_images)[:10]} that are not among the "
            f"{len(image_ids)} evaluated images"
        )
    # COCOeval would silently ignore these and report a lower mAP; an unknown id almost always
    # means class channels were used as category ids instead of category_ids(annotations)[i].
    if stray_categories:
        raise DataError(
            f"detections use category ids {sorted(stray_categories)[:10]} that are not in "
            f"the annotations (ids there: {sorted(category_set)[:10]}...); map class channel "
            "i to category_ids(annotations)[i]"
        )
    return checked


def coco_map(
    annotations: Path,
    detections: list[dict[str, Any]],
    *,
    image_ids: Iterable[int] | None = None,
) -> dict[str, float]:
    """COCO bbox AP of ``detections`` (results format, original pixels) with pycocotools.

    Only ``image_ids`` are scored (default: every image in the file), so pass
    ``dataset.image_ids`` when evaluating a subset: images without detections still count.
    ``map_small``/``medium``/``large`` are -1 when no ground truth falls in that range.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    data = load_instances(annotations)
    known = {int(record["id"]) for record in data["images"]}
    evaluated = sorted(known if image_ids is None else {int(i) for i in image_ids})
    unknown = sorted(set(evaluated) - known)
    if unknown:
        raise DataError(f"image ids {unknown[:10]} are not in {ANNOTATIONS_FIELD} {annotations}")
    if not evaluated:
        raise DataError("coco_map: no images to evaluate (image_ids is empty)")
    categories = {int(category["id"]) for category in data["categories"]}
    results = _check_detections(detections, set(evaluated), categories)

    summary = io.StringIO()  # pycocotools prints progress and its table to stdout
    with contextlib.redirect_stdout(summary):
        ground_truth = COCO()
        ground_truth.dataset = data
        ground_truth.createIndex()
        if results:
            predicted = ground_truth.loadRes(results)
        else:
            # loadRes indexes anns[0] and fails on an empty list. An empty results set is
            # still a valid answer (every ground-truth box missed), so build it by hand and let
            # COCOeval score it: AP 0 where there is ground truth, -1 where there is none.
            predicted = COCO()
            predicted.dataset = {
                "images": list(data["images"]),
                "categories": list(data["categories"]),
                "annotations": [],
            }
            predicted.createIndex()
        evaluator = COCOeval(ground_truth, predicted, iouType="bbox")
        evaluator.params.imgIds = evaluated
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    log.info("pycocotools on %d images:\n%s", len(evaluated), summary.getvalue().rstrip())
    metrics = {key: float(value) for key, value in zip(STATS_KEYS, evaluator.stats, strict=False)}
    metrics["n_images"] = len(evaluated)
    metrics["n_detections"] = len(results)
    return metrics


def _voc_image(xml_file: Path, filename: str, image_dir: Path) -> Path:
    """The image of a VOC file: its <filename>, else the xml's stem with any image suffix."""
    candidates = [image_dir / filename] if filename else []
    candidates += [image_dir / f"{xml_file.stem}{suffix}" for suffix in sorted(IMAGE_SUFFIXES)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(
        f"{xml_file.name}: no image {filename!r} or {xml_file.stem}.<jpg|png|...> in {image_dir}"
    )


def voc_to_coco(
    xml_files: Iterable[Path], image_dir: Path, *, rename: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A COCO instances dict from Pascal-VOC xml files (image ids 1.. in the given order).

    Boxes keep VOC's pixel coordinates: bbox = [xmin, ymin, xmax - xmin, ymax - ymin].
    ``rename`` maps VOC class names to category names first (e.g. merge "Alive"/"Dead" into
    "Tree"); category ids are 1.. over the sorted names. Image sizes are read from the images.
    """
    rename = dict(rename or {})
    from PIL import Image

    image_dir = Path(image_dir)
    images, objects = [], []
    for image_id, xml_file in enumerate(map(Path, xml_files), start=1):
        try:
            root = ET.parse(xml_file).getroot()
        except (ET.ParseError, OSError) as error:
            raise DataError(f"{xml_file}: not a readable Pascal-VOC xml ({error})") from error
        path = _voc_image(xml_file, (root.findtext("filename") or "").strip(), image_dir)
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
        xml_size = (int(root.findtext("size/width") or 0), int(root.findtext("size/height") or 0))
        if xml_size != (0, 0) and xml_size != (width, height):
            raise DataError(
                f"{xml_file.name}: <size> {xml_size} but {path.name} is {width}×{height}"
            )
        images.append({"id": image_id, "file_name": path.name, "width": width, "height": height})
        for obj in root.iter("object"):
            name = (obj.findtext("name") or "").strip()
            try:
                x1, y1, x2, y2 = (
                    float(obj.findtext(f"bndbox/{tag}") or "")
                    for tag in ("xmin", "ymin", "xmax", "ymax")
                )
            except ValueError as error:
                raise DataError(
                    f"{xml_file.name}: object {name!r} has no numeric bndbox"
                ) from error
            if not name or x2 <= x1 or y2 <= y1:
                raise DataError(
                    f"{xml_file.name}: bad object {name!r} with box {(x1, y1, x2, y2)} "
                    "(needs a name and xmax > xmin, ymax > ymin)"
                )
            objects.append((image_id, rename.get(name, name), [x1, y1, x2 - x1, y2 - y1]))
    names = sorted({name for _, name, _ in objects})
    ids = {name: index for index, name in enumerate(names, start=1)}
    annotations = [
        {
            "id": ann_id,
            "image_id": image_id,
            "category_id": ids[name],
            "bbox": bbox,
            "area": bbox[2] * bbox[3],
            "iscrowd": 0,
        }
        for ann_id, (image_id, name, bbox) in enumerate(objects, start=1)
    ]
    return {
        "info": {"description": "Pascal VOC converted by coreml_bench.detection.voc_to_coco"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": ids[name], "name": name, "supercategory": name} for name in names],
    }


# Two real aerial images of the deepforest wheel with their Pascal-VOC boxes. OSBS_029.xml
# says "Tree"; SOAP_061.xml says "Alive" or "Dead": all trees, merged into one category.
DEEPFOREST_STEMS = ("OSBS_029", "SOAP_061")
DEEPFOREST_RENAME = {"Alive": "Tree", "Dead": "Tree"}


def deepforest_sample(wheel_dir: Path, dest: Path) -> tuple[Path, Path]:
    """(images folder, instances json) of the offline detection sample, written under ``dest``.

    Read straight from the deepforest wheel (``bash envs/install.sh`` downloads it without
    installing it): no network, one category ("Tree"), 98 boxes on two images.
    """
    import zipfile

    wheels = sorted(Path(wheel_dir).glob("deepforest-*.whl"))
    if not wheels:
        raise DataError(
            f"data.evaluation.wheel_dir: no deepforest-*.whl in {str(wheel_dir)!r}; "
            "`bash envs/install.sh` downloads it"
        )
    images, xml_dir = Path(dest) / "images", Path(dest) / "voc"
    images.mkdir(parents=True, exist_ok=True)
    xml_dir.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for stem in DEEPFOREST_STEMS:
            (images / f"{stem}.png").write_bytes(wheel.read(f"deepforest/data/{stem}.png"))
            (xml_dir / f"{stem}.xml").write_bytes(wheel.read(f"deepforest/data/{stem}.xml"))
    xml_files = [xml_dir / f"{stem}.xml" for stem in DEEPFOREST_STEMS]
    annotations = Path(dest) / "annotations" / "instances.json"
    annotations.parent.mkdir(exist_ok=True)
    coco = voc_to_coco(xml_files, images, rename=DEEPFOREST_RENAME)
    annotations.write_text(json.dumps(coco))
    return images, annotations
