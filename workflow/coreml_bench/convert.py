"""Stage convert: torch → Core ML ML program (fp16) plus a manifest beside the package."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from .fingerprint import record_provenance
from .io import write_json_atomic
from .mlpackage.files import package_summary, save_atomic
from .models import ModelSpec, load_model
from .provenance import StageTimer, package_versions
from .schema_base import StrictModel

log = logging.getLogger(__name__)

# Deployment targets in the order Core ML gained features; iOS and macOS releases pair up.
TARGET_RANK = {"iOS16": 16, "macOS13": 16, "iOS17": 17, "macOS14": 17, "iOS18": 18, "macOS15": 18}
DeploymentTarget = Literal["iOS16", "iOS17", "iOS18", "macOS13", "macOS14", "macOS15"]

INPUT_NAME = "image"
OUTPUT_NAME = "logits"


class ConversionSettings(StrictModel):
    """Section ``conversion``: how every model becomes an fp16 ML program."""

    minimum_deployment_target: DeploymentTarget = "iOS18"
    method: Literal["export", "trace"] = "export"


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


def convert_spec(
    network: Any, model: ModelSpec, conversion: ConversionSettings, method: str | None = None
) -> Any:
    """``network`` as the fp16 ML program of ``model``'s input, per the conversion settings
    (``method`` overrides ``conversion.method``, e.g. trace for quantized activations)."""
    return to_coreml(
        network,
        model.input_size,
        in_channels=model.in_channels,
        minimum_deployment_target=conversion.minimum_deployment_target,
        method=method or conversion.method,
    )


def convert_model(
    *,
    model: ModelSpec,
    conversion: ConversionSettings,
    weights: Path,
    package: Path,
    manifest: Path,
) -> dict[str, Any]:
    """Load the checkpoint, convert, save the package atomically and write its manifest."""
    timer = StageTimer()
    with timer.section("load"):
        torch_model = load_model(model.architecture, weights, model.num_classes)
    log.info("converting %s via torch.%s", model.id, conversion.method)
    with timer.section("convert"):
        mlmodel = convert_spec(torch_model, model, conversion)
    with timer.section("save"):
        save_atomic(mlmodel, package)
    record = {
        "stage": "convert",
        "model": model.id,
        "package": str(package),
        "conversion": conversion.model_dump(mode="json"),
        "input": {"name": INPUT_NAME, "shape": list(model.example_shape())},
        **package_summary(package),
        "timing": timer.summary(),
        "versions": package_versions(),
        "provenance": record_provenance("convert"),
    }
    write_json_atomic(manifest, record)
    return record
