"""One variant mirrored into a test MLflow store: the inputs, the call, a writer process.

Its own module, not the test module's, so that spawned writer processes can import
``log_variants`` by name (pytest imports test modules under names a child cannot import).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coreml_bench.tracking.mlflow_store import artifact_location, log_variant_run

STUDY = "study"
PARAMS = {"compression": {"algorithm": "palettize_kmeans", "n_bits": 4}, "shape": [1, 3, 8]}
PACKAGE_FILES = {
    "Manifest.json": b'{"fileFormatVersion": "1.0.0"}',
    "Data/com.apple.CoreML/model.mlmodel": b"\x08\x01spec",
    "Data/com.apple.CoreML/weights/weight.bin": bytes(range(256)) * 4,
}


def store_uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def variant_inputs(root: Path, model: str, experiment: str) -> tuple[Path, Path]:
    """An evaluation JSON and a fake .mlpackage directory with nested files."""
    inputs = root / "inputs" / model / experiment
    evaluation = inputs / "evaluation.json"
    package = inputs / "model.mlpackage"
    if not evaluation.exists():
        evaluation.parent.mkdir(parents=True, exist_ok=True)
        evaluation.write_text('{"top1": 70.0}')
        for relative, data in PACKAGE_FILES.items():
            (package / relative).parent.mkdir(parents=True, exist_ok=True)
            (package / relative).write_bytes(data)
    return evaluation, package


def log_variant(
    root: Path,
    model: str = "m1",
    experiment: str = "k4",
    *,
    top1: float = 70.0,
    lock: bool = True,
    **overrides: Any,
) -> dict[str, str]:
    evaluation, package = variant_inputs(root, model, experiment)
    kwargs: dict[str, Any] = {
        "tracking_uri": store_uri(root),
        "study": STUDY,
        "artifact_root": root / "results" / "mlflow" / "artifacts",
        "model_id": model,
        "experiment_id": experiment,
        "trial": 1,
        "params": PARAMS,
        "metrics": {"top1": top1, "latency_ms": 1.5, "missing": None, "nan": float("nan")},
        "tags": {"backend": "weights-torch"},
        "artifact_files": [evaluation, ("logs/convert", evaluation)],
        "artifact_dirs": {"model.mlpackage": package},
        "lock_path": root / ".lock" if lock else None,
    }
    kwargs.update(overrides)
    return log_variant_run(**kwargs)


def log_variants(root: str, model: str, index: int) -> None:
    for j in range(3):
        log_variant(Path(root), model, f"e{index}-{j}")


def log_study_from_its_own_directory(workdir: str, database: str, index: int) -> None:
    """One study's four variants into the sqlite store ``database``, from its own working
    directory (as two checkouts of the workflow would), with the store's own lock."""
    import os

    os.chdir(workdir)
    uri = f"sqlite:///{database}"
    for j in range(4):
        log_variant(
            Path(workdir),
            f"m{index}",
            f"e{j}",
            tracking_uri=uri,
            study=f"study-{index}",
            artifact_root=artifact_location(uri),
            lock_path=None,
        )
