"""Stage convert: an fp16 ML program with a manifest beside it that names its input."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from coreml_bench.convert import ConversionSettings, convert_model
from coreml_bench.data import Preprocessing
from coreml_bench.io import directory_sha256
from coreml_bench.models import ModelSpec, build_model


def test_convert_writes_the_package_and_its_manifest(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "cnn.pth"
    torch.save(build_model("fashion_cnn", 10).state_dict(), weights)
    model = ModelSpec(
        id="cnn",
        architecture="fashion_cnn",
        source={"kind": "random"},
        num_classes=10,
        preprocessing=Preprocessing(resize=28, crop_size=28, mean=(0.286,), std=(0.353,)),
        in_channels=1,
        task="classification",
    )
    package, manifest = tmp_path / "fp16.mlpackage", tmp_path / "fp16.json"
    record = convert_model(
        model=model,
        conversion=ConversionSettings(),
        weights=weights,
        package=package,
        manifest=manifest,
    )
    assert json.loads(manifest.read_text()) == json.loads(json.dumps(record))
    assert record["input"] == {"name": "image", "shape": [1, 1, 28, 28]}
    assert record["conversion"] == {"minimum_deployment_target": "iOS18", "method": "export"}
    assert record["package_sha256"] == directory_sha256(package)
    assert record["op_counts"]["conv"] == 4
