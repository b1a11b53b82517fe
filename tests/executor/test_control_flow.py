"""Control flow: ``cond`` and ``while_loop`` blocks compiled into nested plans, run by the
graph in Python, checked against numpy; state writes inside blocks; refusals inside blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from coreml_bench.executor import CompiledProgram, Plan, UnsupportedOpError
from coremltools.converters.mil import Builder as mb


def _program(build, *shapes, dtype: str = "fp32", opset: str = "iOS17"):
    import coremltools as ct
    from coremltools.converters.mil.mil import types

    mil_dtype = {"fp16": types.fp16, "fp32": types.fp32}[dtype]
    specs = [mb.TensorSpec(shape=s, dtype=mil_dtype) for s in shapes]
    return mb.program(input_specs=specs, opset_version=getattr(ct.target, opset))(build)


def _cond_body(x):
    positive = mb.greater(x=mb.reduce_sum(x=x, axes=[0, 1]), y=np.float32(0.0))
    picked, scale = mb.cond(
        pred=positive,
        _true_fn=lambda: (mb.relu(x=mb.mul(x=x, y=np.float32(3.0))), mb.const(val=np.float32(2))),
        _false_fn=lambda: (x, mb.const(val=np.float32(-1))),  # an outer value, unchanged
    )
    return mb.add(x=picked, y=scale), picked


def _cond_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.sum() > 0:
        picked, scale = np.maximum(3 * x, 0), 2.0
    else:
        picked, scale = x, -1.0
    return picked + scale, picked


def test_cond_runs_the_branch_its_predicate_picks() -> None:
    program = CompiledProgram.from_program(_program(_cond_body, (1, 3)))
    for row in ([[1.0, -2.0, 3.0]], [[-1.0, -2.0, 0.5]]):
        x = np.array(row, np.float32)
        total, picked = program.run(x=torch.from_numpy(x)).values()
        want_total, want_picked = _cond_reference(x)
        np.testing.assert_array_equal(total.numpy(), want_total)
        np.testing.assert_array_equal(picked.numpy(), want_picked)
    # The false branch returns the input itself: the caller's tensor is never written.
    x = torch.tensor([[-1.0, -2.0, 0.5]])
    before = x.clone()
    program.run(x=x)
    assert torch.equal(x, before)


def test_stacked_samples_through_cond_run_one_at_a_time() -> None:
    program = CompiledProgram.from_program(_program(_cond_body, (1, 3)))
    assert program.row_hazard
    batch = np.array([[1.0, 2.0, 3.0], [-5.0, 1.0, 1.0], [0.5, 0.0, 0.0]], np.float32)
    total, picked = program.rows(x=torch.from_numpy(batch)).values()
    for i, row in enumerate(batch):
        want_total, want_picked = _cond_reference(row[None])
        np.testing.assert_array_equal(total[i : i + 1].numpy(), want_total)
        np.testing.assert_array_equal(picked[i : i + 1].numpy(), want_picked)


def test_a_flexible_batch_through_cond_still_runs_sample_by_sample() -> None:
    import coremltools as ct
    from coremltools.converters.mil.mil import get_new_symbol

    spec = mb.TensorSpec(shape=(get_new_symbol(), 3))
    program = CompiledProgram.from_program(
        mb.program(input_specs=[spec], opset_version=ct.target.iOS17)(_cond_body)
    )
    assert program.inputs[0].shape == [None, 3]
    batch = np.array([[1.0, 2.0, 3.0], [-5.0, 1.0, 1.0]], np.float32)
    total, _ = program.rows(x=torch.from_numpy(batch)).values()
    want = np.concatenate([_cond_reference(row[None])[0] for row in batch])
    np.testing.assert_array_equal(total.numpy(), want)  # at once, one branch would serve both


def _loop_body(x):
    # Double x until its sum exceeds 100 (data-dependent trip count), counting the steps.
    def cond(count, value):
        return mb.less(x=mb.reduce_sum(x=value, axes=[0, 1]), y=np.float32(100.0))

    def body(count, value):
        return mb.add(x=count, y=np.int32(1)), mb.mul(x=value, y=np.float32(2.0))

    count, value = mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0), x))
    return count, value


def _loop_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    count, value = 0, x.copy()
    while value.sum() < 100:
        count, value = count + 1, value * 2
    return np.int32(count), value


def test_while_loop_iterates_until_its_condition_fails() -> None:
    program = CompiledProgram.from_program(_program(_loop_body, (1, 3)))
    for row in ([[1.0, 2.0, 0.5]], [[60.0, 50.0, 0.0]], [[0.01, 0.0, 0.0]]):
        x = np.array(row, np.float32)  # 6 steps; none (the initial values); 14 steps
        count, value = program.run(x=torch.from_numpy(x)).values()
        want_count, want_value = _loop_reference(x)
        assert count.dtype == torch.int32 and int(count) == int(want_count)
        np.testing.assert_array_equal(value.numpy(), want_value)


def test_nested_control_flow_and_captured_values(tmp_path: Path) -> None:
    # Collatz-like on a float vector: while max > 1, halve the even... here: a cond inside
    # the loop body picks halving or a 3x+1 step, reading a captured outer tensor (offset).
    def build(x):
        offset = mb.mul(x=x, y=np.float32(0.0))  # computed outside, read inside both blocks

        def cond(count, value):
            small = mb.less(x=mb.reduce_max(x=value, axes=[0, 1]), y=np.float32(1.5))
            return mb.logical_and(x=mb.logical_not(x=small), y=mb.less(x=count, y=np.int32(50)))

        def body(count, value):
            top = mb.reduce_max(x=value, axes=[0, 1])
            even = mb.equal(x=mb.mod(x=top, y=np.float32(2.0)), y=np.float32(0.0))
            stepped = mb.cond(
                pred=even,
                _true_fn=lambda: mb.add(x=mb.real_div(x=value, y=np.float32(2.0)), y=offset),
                _false_fn=lambda: mb.add(
                    x=mb.add(x=mb.mul(x=value, y=np.float32(3.0)), y=np.float32(1.0)), y=offset
                ),
            )
            return mb.add(x=count, y=np.int32(1)), stepped

        return mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0), x))

    def reference(x: np.ndarray) -> tuple[int, np.ndarray]:
        count, value = 0, x.copy()
        while not value.max() < 1.5 and count < 50:
            value = value / 2 if value.max() % 2 == 0 else value * 3 + 1
            count += 1
        return count, value

    program = CompiledProgram.from_program(_program(build, (1, 2)))
    program.plan.save(tmp_path / "plan")  # blocks survive plan.json
    loaded = CompiledProgram(Plan.load(tmp_path / "plan"))
    for row in ([[6.0, 1.0]], [[7.0, 3.0]], [[1.0, 0.0]]):
        x = np.array(row, np.float32)
        want_count, want_value = reference(x)
        for compiled in (program, loaded):
            count, value = compiled.run(x=torch.from_numpy(x)).values()
            assert int(count) == want_count
            np.testing.assert_array_equal(value.numpy(), want_value)


def test_fp16_blocks_round_as_the_ops_outside_them() -> None:
    def build(x):
        def cond(value):
            return mb.less(x=mb.reduce_sum(x=value, axes=[0, 1]), y=np.float16(10.0))

        def body(value):
            return (mb.add(x=mb.mul(x=value, y=np.float16(1.1)), y=np.float16(0.01)),)

        return mb.while_loop(_cond=cond, _body=body, loop_vars=(x,))  # one var: a Var

    program = CompiledProgram.from_program(_program(build, (1, 3), dtype="fp16"))
    x = np.array([[0.3, 0.7, 1.1]], np.float16)
    value = x.copy()
    while np.float16(value.astype(np.float32).sum()) < 10:  # reduce_sum rounds to fp16
        value = (value * np.float16(1.1)).astype(np.float16) + np.float16(0.01)
    (got,) = program.run(x=torch.from_numpy(x.astype(np.float32))).values()
    np.testing.assert_array_equal(got.numpy(), value.astype(np.float32))


def test_state_written_inside_a_loop_is_kept_though_its_result_is_unused() -> None:
    import coremltools as ct
    from coremltools.converters.mil.mil import types

    specs = [mb.TensorSpec((1, 2), dtype=types.fp32), mb.StateTensorSpec((1, 2), dtype=types.fp32)]

    @mb.program(input_specs=specs, opset_version=ct.target.iOS18)
    def program(x, total):
        def cond(count):
            return mb.less(x=count, y=np.int32(3))

        def body(count):
            mb.coreml_update_state(state=total, value=mb.add(x=x, y=mb.read_state(input=total)))
            return (mb.add(x=count, y=np.int32(1)),)

        mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0),))  # results unused
        return mb.mul(x=x, y=np.float32(1.0))

    compiled = CompiledProgram.from_program(program)
    state = compiled.make_state()
    x = torch.tensor([[1.0, -0.5]])
    compiled.run(x=x, state=state)
    compiled.run(x=x, state=state)
    assert torch.equal(state["total"], 6 * x)


def test_every_unsupported_op_inside_blocks_is_listed() -> None:
    def build(x):
        picked = mb.cond(
            pred=mb.greater(x=mb.reduce_sum(x=x, axes=[0, 1]), y=np.float32(0.0)),
            _true_fn=lambda: mb.add(x=x, y=mb.random_uniform(shape=np.array([1, 3], np.int32))),
            _false_fn=lambda: mb.add(x=x, y=mb.random_normal(shape=np.array([1, 3], np.int32))),
        )
        return mb.add(x=picked, y=mb.random_bernoulli(shape=np.array([1, 3], np.int32)))

    with pytest.raises(UnsupportedOpError) as info:
        CompiledProgram.from_program(_program(build, (1, 3)))
    message = str(info.value)
    assert "nothing was run" in message
    for op in ("random_uniform", "random_normal", "random_bernoulli"):
        assert op in message
