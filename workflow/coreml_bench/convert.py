"""Stage 2: torch → Core ML ML program (fp16) plus a manifest beside the package."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .manifest import StageTimer, package_versions, write_json_atomic
from .mlpackage import package_summary, save_atomic

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAME = "logits"


def example_shape(model_cfg: dict[str, Any]) -> tuple[int, int, int, int]:
    """The batch-1 input shape of a resolved model config (``ModelConfig.resolved()``)."""
    size = model_cfg["input_size"]
    return (1, model_cfg["in_channels"], size, size)


def to_coreml(
    model: Any,
    input_size: int,
    *,
    in_channels: int = 3,
    minimum_deployment_target: str = "iOS18",
    method: str = "export",
) -> Any:
    """Convert an eval-mode torch module with a fixed 1×C×H×W input to an fp16 ML program.

    ``torch.export`` is the default because ``torch.jit.trace`` fails on some real models
    (e.g. EfficientNet-Lite0's shape arithmetic); ``trace`` stays available as a fallback.
    """
    import coremltools as ct
    import torch

    example = torch.rand(1, in_channels, input_size, input_size)
    model = model.eval()
    with torch.no_grad():
        if method == "export":
            program = torch.export.export(model, (example,)).run_decompositions({})
        elif method == "trace":
            program = torch.jit.trace(model, example)
        else:
            raise ValueError(f"conversion.method must be 'export' or 'trace', got {method!r}")
    return ct.convert(
        program,
        inputs=[ct.TensorType(name=INPUT_NAME, shape=example.shape)],
        outputs=[ct.TensorType(name=OUTPUT_NAME)],
        convert_to="mlprogram",
        compute_precision=ct.precision.FLOAT16,
        minimum_deployment_target=getattr(ct.target, minimum_deployment_target),
    )


def convert_model(
    *,
    model_cfg: dict[str, Any],
    conversion_cfg: dict[str, Any],
    weights: Path,
    package: Path,
    manifest: Path,
) -> dict[str, Any]:
    """Load the checkpoint, convert, save the package atomically and write its manifest."""
    from .models import load_model

    timer = StageTimer()
    with timer.section("load"):
        model = load_model(model_cfg["architecture"], weights, model_cfg["num_classes"])
    log.info("converting %s via torch.%s", model_cfg["id"], conversion_cfg["method"])
    with timer.section("convert"):
        mlmodel = to_coreml(
            model,
            model_cfg["input_size"],
            in_channels=model_cfg["in_channels"],
            minimum_deployment_target=conversion_cfg["minimum_deployment_target"],
            method=conversion_cfg["method"],
        )
    with timer.section("save"):
        save_atomic(mlmodel, package)
    record = {
        "stage": "convert",
        "model": model_cfg["id"],
        "package": str(package),
        "conversion": conversion_cfg,
        "input": {
            "name": INPUT_NAME,
            "shape": list(example_shape(model_cfg)),
        },
        **package_summary(package),
        "timing": timer.summary(),
        "versions": package_versions(),
    }
    write_json_atomic(manifest, record)
    return record
