"""Per-layer sensitivity: one compressed tensor put into the fp16 plan is the program with
exactly that tensor compressed by coremltools (op_name_configs naming only it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from coreml_bench.compress.coreml_side import (
    PalettizeKmeans,
    PruneMagnitude,
    QuantizeLinear,
    pass_config,
)
from coreml_bench.executor.runtime import load_or_compile
from coreml_bench.mlpackage.tensors import stored_weights
from coreml_bench.sensitivity.measure import (
    changed_weights,
    output_measures,
    run_plan,
    with_weight,
)

SETTINGS = {
    "kmeans-4bit": PalettizeKmeans(n_bits=4),
    "int8": QuantizeLinear(dtype="int8"),
    "prune-50": PruneMagnitude(target_sparsity=0.5),
}


def _compress(fp16: Path, setting: object, dest: Path, op_names: list[str] | None) -> Path:
    import coremltools as ct

    mlmodel = ct.models.MLModel(str(fp16), skip_model_load=True)
    config = pass_config(setting)  # type: ignore[arg-type]
    config.run(mlmodel, op_names).save(str(dest))
    return dest


@pytest.mark.parametrize("name", list(SETTINGS))
def test_one_swapped_tensor_is_that_tensor_compressed_alone(
    name: str, fashion_package: Path, tmp_path: Path
) -> None:
    setting = SETTINGS[name]
    whole = _compress(fashion_package, setting, tmp_path / "all.mlpackage", None)
    fp16_plan, plan = load_or_compile(fashion_package), load_or_compile(whole)
    weights = changed_weights(
        fp16_plan, plan, stored_weights(fashion_package), stored_weights(whole)
    )
    # The 3x3 convs over 2048 values and the first linear; the 288- and 1280-value
    # tensors stay dense (weight_threshold).
    assert len(weights) == 4
    weight = weights[1]
    alone = _compress(
        fashion_package, setting, tmp_path / "one.mlpackage", [weight.dense.const_name]
    )
    alone_plan = load_or_compile(alone)
    assert len(changed_weights(fp16_plan, alone_plan, stored_weights(fashion_package),
                               stored_weights(alone))) == 1  # fmt: skip
    batches = [(torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(0)), None)]
    swapped = run_plan(with_weight(fp16_plan, weight), batches)  # type: ignore[arg-type]
    assert torch.equal(swapped, run_plan(alone_plan, batches))  # type: ignore[arg-type]
    assert not torch.equal(swapped, run_plan(fp16_plan, batches))  # type: ignore[arg-type]
    compressed = {w.op_name: w for w in stored_weights(alone)}[weight.op_name]
    assert compressed.stored_bytes == weight.compressed.stored_bytes  # priced as it will be


def test_output_measures() -> None:
    reference = torch.tensor([[4.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    labels = torch.tensor([0, 2])
    same = output_measures(reference, reference, labels)
    assert same == {"kl": 0.0, "snr_db": None, "top1": 50.0, "agreement": 100.0}
    flipped = output_measures(reference, reference.flip(1), labels)
    assert flipped["kl"] > 1.0
    assert flipped["agreement"] == 50.0  # the second row keeps class 1 on top
    assert flipped["top1"] == 0.0  # top-1 classes 2 and 1 now, against labels 0 and 2
    noisy = output_measures(reference, reference + 0.01, labels)
    assert 40 < noisy["snr_db"] < 60  # type: ignore[operator]
