"""Stateful programs (iOS18 state inputs): ``read_state`` / ``coreml_update_state`` on buffers
the caller owns (``make_state``), updated in place call after call, as Core ML does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from coreml_bench.executor import (
    CompiledProgram,
    Plan,
    ProgramExecutor,
    UnsupportedOpError,
)
from coremltools.converters.mil import Builder as mb


def _accumulator(dtype: str, return_update: bool = False):
    """y = x + state; state ← y; returns 2·x (the update's result unused) or the update."""
    import coremltools as ct
    from coremltools.converters.mil.mil import types

    mil_dtype = {"fp16": types.fp16, "fp32": types.fp32}[dtype]
    two = np.float16(2.0) if dtype == "fp16" else np.float32(2.0)
    specs = [
        mb.TensorSpec((1, 3), dtype=mil_dtype),
        mb.StateTensorSpec((1, 3), dtype=mil_dtype),
    ]

    @mb.program(input_specs=specs, opset_version=ct.target.iOS18)
    def program(x, accumulator):
        total = mb.add(x=x, y=mb.read_state(input=accumulator))
        written = mb.coreml_update_state(state=accumulator, value=total)
        return written if return_update else mb.mul(x=x, y=two)

    return program


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_an_accumulator_accumulates_call_after_call(dtype: str) -> None:
    program = CompiledProgram.from_program(_accumulator(dtype))
    assert [(s.name, s.dtype, s.shape) for s in program.states] == [("accumulator", dtype, [1, 3])]
    assert [i.name for i in program.inputs] == ["x"]
    state = program.make_state()
    assert torch.equal(state["accumulator"], torch.zeros(1, 3))  # Core ML's initial value
    x = torch.tensor([[1.0, 0.1, -2.5]])
    expected = np.zeros((1, 3), np.float16 if dtype == "fp16" else np.float32)
    for _ in range(3):
        (doubled,) = program.run(x=x, state=state).values()
        # The update's result is unused: the write must still happen (not dead code).
        expected = expected + x.numpy().astype(expected.dtype)
        assert np.array_equal(state["accumulator"].numpy(), expected.astype(np.float32))
        assert torch.equal(doubled, (2 * x).half().float() if dtype == "fp16" else 2 * x)
    # Two states are independent; a state the caller sets is what the program reads.
    other = program.make_state()
    other["accumulator"].fill_(10.0)
    program.run(x=x, state=other)
    if dtype == "fp16":
        assert torch.equal(other["accumulator"], (10.0 + x.half().float()).half().float())
    else:
        assert torch.equal(other["accumulator"], 10.0 + x)
    assert np.array_equal(state["accumulator"].numpy(), expected.astype(np.float32))


def test_the_update_returns_a_copy_of_what_it_wrote() -> None:
    program = CompiledProgram.from_program(_accumulator("fp16", return_update=True))
    state = program.make_state()
    x = torch.tensor([[0.1, 0.2, 0.3]])
    (first,) = program.run(x=x, state=state).values()
    (second,) = program.run(x=x, state=state).values()
    assert torch.equal(first, x.half().float())
    assert torch.equal(second, state["accumulator"])
    assert second.data_ptr() != state["accumulator"].data_ptr()  # a copy, not the buffer
    second.add_(1.0)
    assert torch.equal(state["accumulator"], (x.half().float() * 2).half().float())


def test_a_stateful_program_needs_its_state_and_refuses_stacked_samples(tmp_path: Path) -> None:
    program = CompiledProgram.from_program(_accumulator("fp32"))
    assert program.row_hazard and "state" in program.row_hazard
    x = torch.zeros(1, 3)
    with pytest.raises(TypeError, match=r"stateful.*make_state"):
        program.run(x=x)
    with pytest.raises(TypeError, match=r"must be a torch.float32 tensor of shape \(1, 3\)"):
        program.run(x=x, state={"accumulator": torch.zeros(1, 3, dtype=torch.float64)})
    with pytest.raises(TypeError, match=r"states are \['accumulator'\]"):
        program.run(x=x, state={})
    with pytest.raises(TypeError, match="stacked samples would share one state"):
        program.rows(torch.zeros(4, 3))
    # The plan keeps its states through plan.json.
    program.plan.save(tmp_path / "plan")
    loaded = CompiledProgram(Plan.load(tmp_path / "plan"))
    state = loaded.make_state()
    loaded.run(x=torch.ones(1, 3), state=state)
    loaded.run(x=torch.ones(1, 3), state=state)
    assert torch.equal(state["accumulator"], torch.full((1, 3), 2.0))


class _ShiftCache(torch.nn.Module):
    """A tiny KV cache: each step projects x to a key, shifts it into the cache (slice
    assignment on a registered buffer) and attends over the cache with it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.project = torch.nn.Linear(4, 8)
        self.register_buffer("cache", torch.zeros(1, 3, 8, dtype=torch.float16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = self.project(x).to(torch.float16)  # (1, 8)
        self.cache[:, :-1, :] = self.cache[:, 1:, :].clone()
        self.cache[:, -1:, :] = key[:, None, :]
        scores = (self.cache.float() * key.float()[:, None, :]).sum(-1)  # (1, 3)
        weights = torch.softmax(scores, dim=-1)
        return (weights[..., None] * self.cache.float()).sum(1)


def test_a_converted_kv_cache_model_runs_step_by_step_as_torch(tmp_path: Path) -> None:
    import coremltools as ct

    model = _ShiftCache().eval()
    with torch.no_grad():
        traced = torch.jit.trace(_ShiftCache().eval(), torch.rand(1, 4))
    mlmodel = ct.convert(
        traced,
        inputs=[ct.TensorType(name="x", shape=(1, 4))],
        outputs=[ct.TensorType(name="attended")],
        states=[ct.StateType(wrapped_type=ct.TensorType(shape=(1, 3, 8)), name="cache")],
        minimum_deployment_target=ct.target.iOS18,
    )
    package = tmp_path / "kv_cache.mlpackage"
    mlmodel.save(str(package))
    program = CompiledProgram.from_package(package)
    assert [(s.name, s.dtype, s.shape) for s in program.states] == [("cache", "fp16", [1, 3, 8])]
    state = program.make_state()
    torch.manual_seed(1)
    for step in range(5):
        x = torch.rand(1, 4)
        with torch.no_grad():
            expected = model(x)
        got = program.run(x=x, state=state)["attended"]
        scale = float(expected.abs().max())
        assert float((got - expected).abs().max()) <= 2e-2 * scale, f"step {step}"
        torch.testing.assert_close(
            state["cache"], model.cache.float(), rtol=4e-3, atol=4e-3 * scale
        )
    # Evaluation runs independent samples: a stateful package is refused there, clearly.
    with pytest.raises(UnsupportedOpError, match="stateful program"):
        ProgramExecutor(package)
