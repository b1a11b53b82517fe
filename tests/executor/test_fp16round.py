"""The compiled kernels (``_fp16round.c``) give torch's values on every path this CPU runs:
fp16 rounding as ``x.half().float()`` and the converter's hard-swish as its MIL ops run one by
one (threshold, sigmoid_hard, rounding, mul, rounding), bit for bit, signed zeros included."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from coreml_bench.executor import graph
from coreml_bench.executor.graph import round_fp16
from coreml_bench.executor.ops.elementwise import sigmoid_hard, thresholded_relu

kernels = pytest.importorskip("coreml_bench.executor._fp16round")


@pytest.fixture(params=kernels.paths())
def path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each path this CPU can run (AVX-512, AVX2 + F16C, portable C), then the default."""
    default = kernels.isa()
    kernels.use(request.param)
    yield request.param
    kernels.use(default)


def _fp16_values() -> torch.Tensor:
    """Every fp16 value but NaN, as float32."""
    bits = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)
    values = bits.view(torch.float16).float()
    return values[~values.isnan()]


def _hard_cases() -> torch.Tensor:
    """Every fp16 value, the midpoints between neighbours (ties: to even), one float32 ulp
    either side of each, subnormal and overflow boundaries, inf, NaN and both zeros, random
    values over many scales - an odd count, so the vector loops' tails run too."""
    values = _fp16_values().unique()
    midpoints = ((values[:-1].double() + values[1:].double()) / 2).float()
    midpoints = midpoints[midpoints.isfinite()]
    generator = torch.Generator().manual_seed(0)
    scales = (1e-8, 1e-6, 1e-4, 1e-2, 1.0, 1e2, 3e4, 7e4)
    return torch.cat([
        values, midpoints,
        torch.nextafter(midpoints, torch.tensor(np.inf)),
        torch.nextafter(midpoints, torch.tensor(-np.inf)),
        *(torch.randn(20_001, generator=generator) * s for s in scales),
        torch.tensor([np.inf, -np.inf, np.nan, 0.0, -0.0, 65504.0, 65519.996, 65520.0,
                      -65520.0, 2.0**-24, 2.0**-25, -(2.0**-25), 1.5 * 2.0**-24, 2.0**-14]),
    ])  # fmt: skip


def _same_bits(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """Equal as bit patterns (so -0.0 != 0.0), any NaN equal to any NaN."""
    return (got.view(torch.int32) == want.view(torch.int32)) | (got.isnan() & want.isnan())


def test_rounding_is_torchs_on_every_path(path: str) -> None:
    x = _hard_cases()
    assert x.numel() % 16 and x.numel() % 8  # tails
    want = x.half().float()
    got = x.clone()
    kernels.round_inplace(got.data_ptr(), got.numel())
    same = _same_bits(got, want)
    assert same.all(), (path, x[~same][:5].tolist(), got[~same][:5].tolist())
    assert not torch.equal(got, x)  # it did round


@pytest.mark.parametrize("alpha, beta", [(1 / 6, 0.5), (0.2, 0.5), (1 / 3, -0.25)])
def test_hard_swish_is_the_mil_ops_one_by_one_on_every_path(
    path: str, alpha: float, beta: float
) -> None:
    # The kernel's input is an fp16 value (the rounded conv result, after the threshold).
    for x in (_fp16_values(), round_fp16(_hard_cases()), _fp16_values()[:1001]):
        w = thresholded_relu(x, -3.0)
        want = round_fp16(w * round_fp16(sigmoid_hard(w, alpha, beta)))
        got = w.clone()
        kernels.hard_swish_inplace(got.data_ptr(), got.numel(), alpha, beta)
        same = _same_bits(got, want)
        assert same.all(), (path, w[~same][:5].tolist(), got[~same][:5].tolist())
        if x.numel() != 1001:  # (those are all negative) the gate at 0, between, at 1:
            assert (want == 0).any() and (want != w).any() and (want[w > 0] == w[w > 0]).any()


def test_bad_arguments_are_refused_not_run() -> None:
    x = torch.ones(4)
    with pytest.raises(ValueError, match="count must be >= 0"):
        kernels.round_inplace(x.data_ptr(), -1)
    with pytest.raises(ValueError, match="count must be >= 0"):
        kernels.round_inplace(0, 4)
    with pytest.raises(TypeError, match=r"round_inplace\(address, count\)"):
        kernels.round_inplace(x.data_ptr())
    with pytest.raises(ValueError, match="'sse9'"):
        kernels.use("sse9")
    kernels.round_inplace(0, 0)  # nothing to do is fine
    assert torch.equal(x, torch.ones(4))


def test_graph_roundings_fall_back_to_torch_where_memory_is_not_dense() -> None:
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(2, 8, 6, 12, generator=generator) * 1e3
    view = base[..., ::2]  # strided: the kernel would write the gaps
    untouched = base[..., 1::2].clone()
    want = round_fp16(view.clone())
    assert torch.equal(graph.round_fp16_cpu_(view), want)
    assert torch.equal(base[..., 1::2], untouched)
    w = thresholded_relu(round_fp16(torch.randn(2, 8, 6, 12, generator=generator) * 4), -3.0)
    want = round_fp16(w * round_fp16(sigmoid_hard(w, 1 / 6, 0.5)))
    strided = w.clone().transpose(1, 3)  # neither contiguous nor channels-last
    assert not graph._dense(strided)
    assert torch.equal(graph.hard_swish_fp16_(strided, 1 / 6, 0.5), want.transpose(1, 3))
    for layout in (torch.contiguous_format, torch.channels_last):
        dense = w.clone().contiguous(memory_format=layout)
        got = graph.hard_swish_fp16_(dense, 1 / 6, 0.5)
        assert got.data_ptr() == dense.data_ptr() and torch.equal(got, want)


def test_exported_non_cpu_and_portable_path_graphs_round_with_torch_ops() -> None:
    # torch.export traces torch ops; a raw-memory kernel cannot be traced (or run on CUDA).
    hardware = kernels.isa() != "portable"
    assert (graph.in_place_rounding("cpu", fast=True) is graph.round_fp16_cpu_) == hardware
    assert graph.in_place_rounding("cpu", fast=False) is graph.round_fp16_
    assert graph.in_place_rounding("cuda", fast=True) is graph.round_fp16_
    # The portable C path is exact but slower than torch's copies: graphs keep torch's.
    default = kernels.isa()
    kernels.use("portable")
    try:
        assert graph.in_place_rounding("cpu", fast=True) is graph.round_fp16_
    finally:
        kernels.use(default)
