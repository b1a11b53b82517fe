"""The graph builder's rewrites change no value: in-place fp16 rounding, in-place unary and
binary ops on fresh results, relu / relu6 / clip fused into the conv before them (oneDNN
post-ops) and ops specialized at build time give what running each step's plain op, one by one,
gives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from coreml_bench.executor import CompiledProgram
from coreml_bench.executor.graph import round_fp16
from coreml_bench.executor.ops import OPS
from coreml_bench.executor.plan import resolve
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types


def _step_by_step(compiled: CompiledProgram, x: np.ndarray) -> list[torch.Tensor]:
    """The plan run op by op with each op's plain ``run``: no in-place, fusion or binding."""
    plan = compiled.plan
    env: dict[str, Any] = {}
    for info in plan.inputs:
        value = torch.as_tensor(x).float()
        env[info.name] = round_fp16(value) if info.dtype == "fp16" else value
    for step in plan.steps:
        entry = OPS[step.op]
        kwargs = {
            k: resolve(v, env.__getitem__, plan.constants.__getitem__)
            for k, v in step.inputs.items()
        }
        if entry.takes_op:
            kwargs["op"] = step.op
        result = entry.run(**kwargs)
        results = result if isinstance(result, tuple) else (result,)
        for name, value, rounded in zip(step.outputs, results, step.round, strict=True):
            env[name] = round_fp16(value) if rounded else value
    return [env[o.name] for o in plan.outputs]


def _blocks(np_dtype: Any) -> Any:
    """Each conv reads the input: with dyadic weights and inputs every sum is exact, so the
    oneDNN conv and F.conv2d agree bit for bit and any difference is a rewrite's."""
    rng = np.random.default_rng(0)

    def conv(x: Any, out: int = 8) -> Any:
        weight = (rng.integers(-2, 3, (out, x.shape[1], 3, 3)) * 0.25).astype(np_dtype)
        bias = (rng.integers(-2, 3, out) * 0.5).astype(np_dtype)
        return mb.conv(x=x, weight=weight, bias=bias, pad_type="custom", pad=[1, 1, 1, 1])

    def build(x: Any) -> Any:
        # Hard-swish as the converter emits it: the conv's result alone read by the
        # threshold (in place), which two ops then read (no longer in place).
        t = mb.thresholded_relu(x=conv(x), alpha=np_dtype(-3.0))
        swish = mb.mul(x=t, y=mb.sigmoid_hard(x=t, alpha=np_dtype(1 / 6), beta=np_dtype(0.5)))
        # A conv result read by two ops: the threshold may not overwrite it.
        shared = conv(x)
        kept = mb.add(x=mb.thresholded_relu(x=shared, alpha=np_dtype(0.25)), y=shared)
        # Residual add and a broadcast scale into a fresh conv result (in place); a result
        # smaller than the output (squeeze-excite's scale) may not take it.
        residual = mb.add(x=conv(x), y=shared)
        scaled = mb.mul(x=conv(x), y=(rng.integers(1, 4, (1, 8, 1, 1)) * 0.5).astype(np_dtype))
        gate = mb.reduce_mean(x=conv(x), axes=[2, 3], keep_dims=True)
        excited = mb.mul(x=gate, y=scaled)
        return (
            swish,
            kept,
            residual,
            excited,
            mb.relu(x=conv(x)),
            mb.relu6(x=conv(x)),
            mb.clip(x=conv(x), alpha=np_dtype(-0.5), beta=np_dtype(0.75)),
            mb.sigmoid(x=conv(x)),
        )

    return build


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "torch-only"])
@pytest.mark.parametrize("dtype", ["fp16", "fp32"])
def test_rewrites_give_the_values_of_the_plain_ops_run_one_by_one(
    dtype: str, kernels: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import coremltools as ct
    from coreml_bench.executor import graph

    if kernels and graph._round_inplace is None:
        pytest.fail("the compiled kernels (_fp16round) are not built: run envs/install.sh")
    if not kernels:  # as where the package was installed without a C compiler
        monkeypatch.setattr(graph, "_round_inplace", None)

    mil_dtype, np_dtype = (types.fp16, np.float16) if dtype == "fp16" else (types.fp32, np.float32)
    program = mb.program(
        input_specs=[mb.TensorSpec(shape=(1, 4, 12, 12), dtype=mil_dtype)],
        opset_version=ct.target.iOS17,
    )(_blocks(np_dtype))
    compiled = CompiledProgram.from_program(program)
    targets = [
        getattr(n.target, "__name__", "") for n in compiled.module.graph.nodes
        if n.op == "call_function"
    ]  # fmt: skip
    # The rewrites under test are in the graph (else this test would prove nothing).
    assert targets.count("thresholded_relu_") == 1 and targets.count("thresholded_relu") == 1
    # The fp16 hard-swish (sigmoid_hard, rounding, mul, rounding) as one kernel pass; in fp32
    # (nothing rounded) or without the kernels, its ops one by one.
    fused = kernels and dtype == "fp16"
    assert targets.count("hard_swish_fp16_") == int(fused)
    assert ("sigmoid_hard_bound" in targets) == (not fused)
    # Into: the threshold before `kept`, the residual conv, the scaled conv; not: the
    # hard-swish product (its x has two readers), the squeeze-excite product (x is smaller).
    assert targets.count("binary_") == 3 and targets.count("mul") == 2 - int(fused)
    if torch.backends.mkldnn.is_available():
        assert "relu" not in targets and "relu6" not in targets and "clip" not in targets
    if dtype == "fp16":
        assert ("round_fp16_cpu_" if kernels else "round_fp16_") in targets
        assert ("round_fp16_" if kernels else "round_fp16_cpu_") not in targets
    x = (np.random.default_rng(1).integers(-8, 9, (1, 4, 12, 12)) * 0.5).astype(np_dtype)
    got = compiled.run(x)
    want = _step_by_step(compiled, x)
    for value, expected in zip(got.values(), want, strict=True):
        assert torch.equal(value.float(), expected.float())
    swish = want[0]
    assert (swish > 0).any() and (swish < 0).any() and (swish == 0).any()  # every branch


@pytest.mark.parametrize("op", ["silu", "sqrt", "exp", "erf", "square", "tanh"])
def test_in_place_unary_ops_give_the_values_of_the_plain_op(op: str) -> None:
    import coremltools as ct

    # Dyadic weights and inputs: the conv is exact (as in ``_blocks``), so any difference
    # is the in-place op's.
    weight = (np.random.default_rng(2).integers(-2, 3, (4, 3, 3, 3)) * 0.25).astype(np.float32)

    def build(x: Any) -> Any:
        y = mb.conv(x=x, weight=weight, pad_type="same")
        y = mb.abs(x=y) if op == "sqrt" else y  # a fresh result the op alone reads
        return getattr(mb, op)(x=y)

    program = mb.program(
        input_specs=[mb.TensorSpec(shape=(1, 3, 8, 8))], opset_version=ct.target.iOS17
    )(build)
    compiled = CompiledProgram.from_program(program)
    targets = [
        getattr(n.target, "__name__", "") for n in compiled.module.graph.nodes
        if n.op == "call_function"
    ]  # fmt: skip
    assert "_unary_" in targets  # the in-place form is what runs
    x = (np.random.default_rng(3).integers(-8, 9, (1, 3, 8, 8)) * 0.125).astype(np.float32)
    (got,) = compiled.run(x).values()
    (want,) = _step_by_step(compiled, x)
    assert torch.equal(got, want)


def test_large_tensors_round_through_the_kept_buffer_as_through_a_fresh_one() -> None:
    from coreml_bench.executor.graph import _SCRATCH_MIN, round_fp16_

    generator = torch.Generator().manual_seed(0)
    shapes = [(2, 16, 96, 96), (4, 16, 96, 96), (1, 8, 32, 32)]  # grows, then too small
    assert all(int(np.prod(s)) >= _SCRATCH_MIN for s in shapes[:2])
    for shape in shapes:
        for layout in (torch.contiguous_format, torch.channels_last):
            x = (torch.randn(shape, generator=generator) * 1e3).to(memory_format=layout)
            original = x.clone()
            want = round_fp16(original)
            got = round_fp16_(x)
            assert got.data_ptr() == x.data_ptr()  # in place, layout kept
            assert got.is_contiguous(memory_format=layout)
            assert torch.equal(got, want)
            assert not torch.equal(got, original)  # the rounding did change values
    # A strided view (not dense) rounds through its own buffer, not the kept one.
    base = torch.randn(4, 16, 96, 192, generator=generator)
    view = base[..., ::2]
    want = round_fp16(view.clone())
    assert torch.equal(round_fp16_(view), want)
