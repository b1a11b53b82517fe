"""One new entry of every registry kind, from outside the package: the proof that adding an
architecture, a Core ML-side algorithm, a torch-side algorithm, an evaluator, a profiler or a
data kind is one entry in one file (plus config). Loaded with
``COREML_BENCH_PLUGINS=extension_entries`` (tests/test_extension.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from coreml_bench.compress import ALGORITHMS, Algorithm
from coreml_bench.data import DATA_KINDS, DataKind
from coreml_bench.data.imagenet import image_files_dataset
from coreml_bench.evaluate import EVALUATORS, Evaluator
from coreml_bench.models import ARCHITECTURES, Architecture, weight_module_types
from coreml_bench.profile import PROFILERS, LatencyRun, Profiler
from coreml_bench.profile.registry import latency_stats, time_calls
from coreml_bench.schema_base import StrictModel
from pydantic import Field

# ----------------------------------------------------------------------- an architecture


def _tiny_cnn(num_classes: int) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
    )  # fmt: skip


ARCHITECTURES.add(
    "tiny_cnn", Architecture(build=_tiny_cnn, display_name="TinyCNN", input_size=64, resize=72)
)

# ------------------------------------------------------------------------- a data kind


class ImageListData(StrictModel):
    """Images listed in a text file, one '<path> <class index>' per line."""

    kind: Literal["image_list"] = "image_list"
    list: Path


def _image_list_items(params: ImageListData) -> list[tuple[Path, int]]:
    lines = params.list.read_text().split("\n")
    return [(Path(path), int(label)) for path, label in (ln.split() for ln in lines if ln)]


DATA_KINDS.add(
    "image_list",
    DataKind(
        ImageListData,
        "classification",
        "images listed in a text file with their class index",
        check=lambda p: [] if p.list.is_file() else [("list", f"{str(p.list)!r} is missing")],
        dataset=lambda p, transform, limit: image_files_dataset(
            _image_list_items(p)[:limit], transform
        ),
    ),
)

# ------------------------------------------------------------- a Core ML-side algorithm


class PalettizeUniform(StrictModel):
    algorithm: Literal["palettize_uniform"] = "palettize_uniform"
    n_bits: Literal[2, 4, 8] = 4

    def label(self) -> str:
        return f"{self.n_bits} bit uniform"

    def minimum_target(self) -> str:
        return "iOS16"


def _apply_uniform(mlmodel: Any, params: PalettizeUniform) -> Any:
    import coremltools.optimize.coreml as cto

    config = cto.OpPalettizerConfig(mode="uniform", nbits=params.n_bits, weight_threshold=512)
    return cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=config))


ALGORITHMS.add(
    "palettize_uniform",
    Algorithm(
        PalettizeUniform,
        "Uniform Palettization",
        "Post Training",
        kind="coreml",
        marker="8",
        apply=_apply_uniform,
    ),
)

# --------------------------------------------------------------- a torch-side algorithm


class PruneL1Torch(StrictModel):
    algorithm: Literal["prune_l1_torch"] = "prune_l1_torch"
    amount: float = Field(default=0.5, gt=0, lt=1)

    def label(self) -> str:
        return f"L1 {round(100 * self.amount)}% (torch)"

    def minimum_target(self) -> str:
        return "iOS16"


def _prune_l1(job: Any) -> Any:
    from torch.nn.utils import prune

    for module in job.model.modules():
        if isinstance(module, weight_module_types()):
            prune.l1_unstructured(module, "weight", amount=job.params.amount)
            prune.remove(module, "weight")
    return job.model.eval()


ALGORITHMS.add(
    "prune_l1_torch",
    Algorithm(
        PruneL1Torch,
        "L1 Pruning",
        "Post Training",
        kind="torch",
        marker="x",
        compress_torch=_prune_l1,
    ),
)

# -------------------------------------------------------------------------- an evaluator


def _per_sample(package: Path, model: Any, weights: Path | None, device: str) -> Any:
    import torch
    from coreml_bench.executor import ProgramExecutor

    executor = ProgramExecutor(package, device=device)
    return lambda batch: torch.cat([executor(sample[None]) for sample in batch])


EVALUATORS.add(
    "mil-torch-per-sample",
    Evaluator(_per_sample, "the program executor, one image at a time", uses_device=True),
)

# --------------------------------------------------------------------------- a profiler


def _batch4(package: Path, run: LatencyRun) -> dict[str, Any]:
    import torch
    from coreml_bench.executor import ProgramExecutor

    t0 = time.perf_counter()
    executor = ProgramExecutor(package, device=run.device)
    load_ms = (time.perf_counter() - t0) * 1000.0
    batch = torch.rand(4, *executor.input_shape[1:])
    samples = time_calls(lambda: executor(batch), run.runs, run.warmup)
    return {
        **latency_stats(samples),
        "device": "host CPU, batch 4",
        "os": "any",
        "compute_units": "CPU",
        "load_ms": round(load_ms, 3),
    }


PROFILERS.add("host-batch4", Profiler(_batch4, "the program executor timed on batches of 4"))
