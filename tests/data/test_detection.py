"""COCO detection data and pycocotools mAP on real aerial images (deepforest wheel, VOC boxes).

The wheel is downloaded by ``bash envs/install.sh`` into ``.venv/fixtures`` and never installed:
only two images and their Pascal-VOC xml files are extracted, then converted to COCO json.
"""

from __future__ import annotations

import json
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from coreml_bench.data import DataError
from coreml_bench.data.detection import (
    DEEPFOREST_STEMS,
    CocoImages,
    category_ids,
    coco_dataset,
    coco_loader,
    coco_map,
    coco_results,
    deepforest_sample,
    voc_to_coco,
)
from helpers import ROOT
from PIL import Image

STEMS = DEEPFOREST_STEMS
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZE = 256


class Coco:
    """An images folder and its instances json, plus the parsed json."""

    def __init__(self, images: Path, annotations: Path) -> None:
        self.images = images
        self.annotations = annotations
        self.data: dict[str, Any] = json.loads(annotations.read_text())

    def ground_truth(self, image_id: int | None = None) -> list[dict[str, Any]]:
        """The ground-truth boxes as score-1.0 detections."""
        return [
            {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"]}
            | {"score": 1.0}
            for a in self.data["annotations"]
            if image_id is None or a["image_id"] == image_id
        ]


@pytest.fixture(scope="session")
def coco(tmp_path_factory: pytest.TempPathFactory) -> Coco:
    wheel_dir = ROOT / ".venv" / "fixtures"
    if not sorted(wheel_dir.glob("deepforest-*.whl")):
        pytest.fail(f"no deepforest-*.whl in {wheel_dir}: run `bash envs/install.sh`")
    images, annotations = deepforest_sample(wheel_dir, tmp_path_factory.mktemp("coco"))
    return Coco(images, annotations)


def test_voc_conversion_gives_coco_instances(coco: Coco) -> None:
    data = coco.data
    assert [(i["id"], i["file_name"], i["width"], i["height"]) for i in data["images"]] == [
        (1, "OSBS_029.png", 400, 400),
        (2, "SOAP_061.png", 400, 400),
    ]
    assert data["categories"] == [{"id": 1, "name": "Tree", "supercategory": "Tree"}]
    per_image = [sum(a["image_id"] == i for a in data["annotations"]) for i in (1, 2)]
    assert per_image == [61, 37]  # <object> count of each xml
    first = data["annotations"][0]
    # OSBS_029.xml's first object: xmin 203, ymin 67, xmax 227, ymax 90.
    assert first["bbox"] == [203, 67, 24, 23]
    assert first["area"] == 24 * 23
    assert first["iscrowd"] == 0
    assert category_ids(coco.annotations) == [1]


def test_voc_conversion_keeps_distinct_classes_without_rename(coco: Coco) -> None:
    xml_files = [coco.images.parent / "voc" / f"{stem}.xml" for stem in STEMS]
    data = voc_to_coco(xml_files, coco.images)
    assert [(c["id"], c["name"]) for c in data["categories"]] == [
        (1, "Alive"),
        (2, "Dead"),
        (3, "Tree"),
    ]
    counts = {c: sum(a["category_id"] == c for a in data["annotations"]) for c in (1, 2, 3)}
    assert counts == {1: 9, 2: 28, 3: 61}


def test_ground_truth_as_detections_scores_one(coco: Coco) -> None:
    metrics = coco_map(coco.annotations, coco.ground_truth())
    assert metrics["map"] == pytest.approx(1.0)
    assert metrics["map_50"] == pytest.approx(1.0)
    assert metrics["map_75"] == pytest.approx(1.0)
    assert metrics["n_images"] == 2
    assert metrics["n_detections"] == 98


def test_shifted_boxes_score_below_one(coco: Coco) -> None:
    detections = coco.ground_truth()
    for det in detections:
        x, y, w, h = det["bbox"]
        det["bbox"] = [x + 0.3 * w, y, w, h]
    metrics = coco_map(coco.annotations, detections)
    # IoU of a box with itself shifted by 0.3 w is 0.7 / 1.3 = 0.54: a hit at IoU .5 only.
    assert metrics["map_50"] == pytest.approx(1.0)
    assert metrics["map_75"] == pytest.approx(0.0)
    assert metrics["map"] == pytest.approx(0.1)  # 1 of the 10 IoU thresholds .50:.05:.95


def test_dropping_half_the_detections_scores_below_one(coco: Coco) -> None:
    detections = random.Random(0).sample(coco.ground_truth(), k=49)
    metrics = coco_map(coco.annotations, detections)
    # Recall tops out at 0.5 with precision 1: 51 of COCO's 101 recall points (0, .01, ... 1).
    assert metrics["map"] == pytest.approx(51 / 101)
    assert metrics["map"] == pytest.approx(metrics["map_50"])  # kept boxes are exact


def test_jittered_boxes_score_between_zero_and_one(coco: Coco) -> None:
    rng = np.random.default_rng(0)
    detections = coco.ground_truth()
    for det in detections:
        x, y, w, h = det["bbox"]
        dx, dy, dw, dh = rng.normal(0.0, 0.15, size=4)
        det["bbox"] = [x + dx * w, y + dy * h, w * (1 + dw), h * (1 + dh)]
        det["score"] = float(rng.uniform())
    metrics = coco_map(coco.annotations, detections)
    assert 0.0 < metrics["map"] < metrics["map_50"] <= 1.0


def test_empty_detections_score_zero(coco: Coco) -> None:
    metrics = coco_map(coco.annotations, [])
    assert metrics["map"] == 0.0
    assert metrics["map_50"] == 0.0
    assert metrics["n_detections"] == 0


def test_unknown_category_is_an_error(coco: Coco) -> None:
    # Decided: an error, not a silent 0 (COCOeval ignores unknown categories), because it
    # almost always means class channels were used as category ids.
    detections = coco.ground_truth()
    for det in detections:
        det["category_id"] = 0
    with pytest.raises(DataError, match=r"category ids \[0\].*category_ids\(annotations\)"):
        coco_map(coco.annotations, detections)


def test_detections_for_images_outside_the_evaluation_are_an_error(coco: Coco) -> None:
    with pytest.raises(DataError, match=r"image ids \[2\].*not among the 1 evaluated"):
        coco_map(coco.annotations, coco.ground_truth(), image_ids=[1])
    with pytest.raises(DataError, match=r"image ids \[7\] are not in"):
        coco_map(coco.annotations, [], image_ids=[7])


def test_coco_map_leaves_the_detections_unchanged(coco: Coco) -> None:
    detections = coco.ground_truth(1)
    before = json.dumps(detections)
    coco_map(coco.annotations, detections)
    assert json.dumps(detections) == before  # loadRes adds keys to what it is given


def test_loader_batches_and_metas(coco: Coco) -> None:
    loader = coco_loader(
        coco.images, coco.annotations, input_size=SIZE, mean=MEAN, std=STD, batch_size=2
    )
    batches = list(loader)
    assert len(batches) == 1
    pixels, metas = batches[0]
    assert pixels.shape == (2, 3, SIZE, SIZE) and pixels.dtype == torch.float32
    assert metas == [
        {"image_id": 1, "orig_size": (400, 400), "scale": (400 / SIZE, 400 / SIZE)},
        {"image_id": 2, "orig_size": (400, 400), "scale": (400 / SIZE, 400 / SIZE)},
    ]
    assert loader.dataset.image_ids == [1, 2]
    # Normalised with mean/std: undoing it gives [0, 1] pixels whose channel means match the
    # original image's (a resize keeps the mean).
    restored = pixels[0] * torch.tensor(STD)[:, None, None] + torch.tensor(MEAN)[:, None, None]
    assert restored.min() >= -1e-5 and restored.max() <= 1 + 1e-5
    with Image.open(coco.images / "OSBS_029.png") as image:
        original = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
    np.testing.assert_allclose(restored.mean(dim=(1, 2)), original.mean(axis=(0, 1)), atol=0.01)


def test_dataset_is_a_picklable_torch_dataset(coco: Coco) -> None:
    dataset = coco_dataset(coco.images, coco.annotations, input_size=SIZE, mean=MEAN, std=STD)
    assert isinstance(dataset, torch.utils.data.Dataset) and isinstance(dataset, CocoImages)
    copy = pickle.loads(pickle.dumps(dataset))  # DataLoader workers under spawn (macOS)
    assert copy.image_ids == [1, 2] and copy[1][1] == dataset[1][1]


def test_boxes_round_trip_through_scale_on_a_non_square_image(coco: Coco, tmp_path: Path) -> None:
    # A real 400×240 crop, so a swapped (sx, sy) or (h, w) cannot pass.
    images = tmp_path / "images"
    images.mkdir()
    with Image.open(coco.images / "OSBS_029.png") as image:
        image.crop((0, 0, 400, 240)).save(images / "crop.png")
    gt = [
        {"id": 1, "image_id": 5, "category_id": 3, "bbox": [203.0, 67.0, 24.0, 23.0]},
        {"id": 2, "image_id": 5, "category_id": 8, "bbox": [10.0, 150.0, 60.0, 80.0]},
    ]
    data = {
        "images": [{"id": 5, "file_name": "crop.png", "width": 400, "height": 240}],
        "annotations": [a | {"area": a["bbox"][2] * a["bbox"][3], "iscrowd": 0} for a in gt],
        "categories": [{"id": 3, "name": "a"}, {"id": 8, "name": "b"}],
    }
    annotations = tmp_path / "instances.json"
    annotations.write_text(json.dumps(data))

    loader = coco_loader(images, annotations, input_size=SIZE, mean=MEAN, std=STD, batch_size=4)
    pixels, metas = next(iter(loader))
    assert pixels.shape == (1, 3, SIZE, SIZE)
    meta = metas[0]
    assert meta == {"image_id": 5, "orig_size": (240, 400), "scale": (400 / SIZE, 240 / SIZE)}
    sx, sy = meta["scale"]
    # What a detector would predict in input pixels: [x1, y1, x2, y2].
    boxes = torch.tensor(
        [[x / sx, y / sy, (x + w) / sx, (y + h) / sy] for x, y, w, h in (a["bbox"] for a in gt)]
    )
    categories = category_ids(annotations)
    assert categories == [3, 8]
    results = coco_results(meta, boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, 1]), categories)
    for result, truth in zip(results, gt, strict=True):
        assert result["image_id"] == 5 and result["category_id"] == truth["category_id"]
        assert result["bbox"] == pytest.approx(truth["bbox"], abs=1e-4)
    assert coco_map(annotations, results)["map"] == pytest.approx(1.0)


def test_subset_scores_only_the_evaluated_images(coco: Coco) -> None:
    dataset = coco_dataset(
        coco.images, coco.annotations, input_size=SIZE, mean=MEAN, std=STD, limit=1
    )
    assert len(dataset) == 1 and dataset.image_ids == [1]
    detections = coco.ground_truth(image_id=1)
    subset = coco_map(coco.annotations, detections, image_ids=dataset.image_ids)
    assert subset["map"] == pytest.approx(1.0) and subset["n_images"] == 1
    # Over the whole file image 2's trees are all missed.
    whole = coco_map(coco.annotations, detections)
    assert whole["n_images"] == 2 and whole["map"] < 1.0


# --- error paths ---------------------------------------------------------------------------


def test_missing_images_folder(coco: Coco, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.evaluation\.images '.*nowhere' does not exist"):
        coco_dataset(tmp_path / "nowhere", coco.annotations, input_size=SIZE, mean=MEAN, std=STD)


def test_missing_annotations_file(coco: Coco, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.evaluation\.annotations '.*nope\.json' does not"):
        coco_dataset(coco.images, tmp_path / "nope.json", input_size=SIZE, mean=MEAN, std=STD)
    with pytest.raises(DataError, match=r"data\.evaluation\.annotations .* does not exist"):
        category_ids(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"is not JSON"),
        (
            json.dumps({"images": [], "annotations": [{"caption": "a tree"}]}),
            r"not a COCO instances file: it needs keys \['images', 'annotations', 'categories'\] "
            r"but has \['annotations', 'images'\]",
        ),
        (json.dumps([1, 2]), r"not a COCO instances file: .* but has list"),
        (
            json.dumps({"images": [{"id": 1}], "annotations": [{"id": 1}], "categories": []}),
            r"has no categories",
        ),
        (
            json.dumps({"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1}]}),
            r"has no annotations",
        ),
        (
            json.dumps({"images": [], "annotations": [{"id": 1}], "categories": [{"id": 1}]}),
            r"lists no images",
        ),
        (
            json.dumps(
                {
                    "images": [{"id": 1}],
                    "annotations": [{"id": 1, "segments_info": []}],
                    "categories": [{"id": 1}],
                }
            ),
            r"annotations have no 'bbox'/'category_id' \(an annotation has keys \['id', 'segm",
        ),
    ],
)
def test_bad_annotations_file(coco: Coco, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "instances.json"
    path.write_text(content)
    with pytest.raises(DataError, match=r"data\.evaluation\.annotations .*" + message):
        coco_dataset(coco.images, path, input_size=SIZE, mean=MEAN, std=STD)
    with pytest.raises(DataError, match=message):
        coco_map(path, [])


def test_image_missing_on_disk(coco: Coco, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(coco.images / "SOAP_061.png", images)
    with pytest.raises(
        DataError,
        match=r"data\.evaluation\.images .*: 1 of 2 images listed in .* missing, "
        r"e\.g\. \['OSBS_029\.png'\]",
    ):
        coco_dataset(images, coco.annotations, input_size=SIZE, mean=MEAN, std=STD)
    # The subset being evaluated is all there (limit picks image 1 first, so use image 2 only).
    data = json.loads(coco.annotations.read_text())
    data["images"] = data["images"][1:]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] == 2]
    annotations = tmp_path / "instances.json"
    annotations.write_text(json.dumps(data))
    assert len(coco_dataset(images, annotations, input_size=SIZE, mean=MEAN, std=STD)) == 1


def test_image_resized_on_disk(coco: Coco, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    with Image.open(coco.images / "OSBS_029.png") as image:
        image.resize((200, 200)).save(images / "OSBS_029.png")
    shutil.copy(coco.images / "SOAP_061.png", images)
    dataset = coco_dataset(images, coco.annotations, input_size=SIZE, mean=MEAN, std=STD)
    with pytest.raises(DataError, match=r"OSBS_029\.png is 200×200 on disk but .* say 400×400"):
        dataset[0]


def test_bad_limit(coco: Coco) -> None:
    with pytest.raises(DataError, match=r"data\.limit must be a positive integer"):
        coco_dataset(coco.images, coco.annotations, input_size=SIZE, mean=MEAN, std=STD, limit=0)


def test_voc_without_image(tmp_path: Path) -> None:
    xml = tmp_path / "lonely.xml"
    xml.write_text("<annotation><filename>lonely.tif</filename></annotation>")
    with pytest.raises(DataError, match=r"lonely\.xml: no image 'lonely\.tif' or lonely\."):
        voc_to_coco([xml], tmp_path)
