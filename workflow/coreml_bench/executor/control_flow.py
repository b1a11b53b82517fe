"""Control flow (iOS15 ``control_flow.py``): ``cond`` and ``while_loop`` as small modules.

The compiler stores each nested block as a ``plan.Block``: its own inputs (a loop's
variables), the outer results and states it reads (``captured``), its steps and outputs.
Each block becomes a torch.fx GraphModule of its own (``build_graph_module`` on a sub-plan,
built once with the outer graph), and the op is a module that runs them in Python:

* ``cond``: the true or the false block, by ``pred``;
* ``while_loop``: the cond block on the loop variables; while it gives True, the body block
  turns them into the next ones; the last ones are the result.

A block's inputs arrive as they are (no rounding, copying or layout change: they were
computed by the graph, and states must stay the caller's buffers); the blocks never write
into them (only into results they compute themselves), so a result may alias an input -
the control-flow op is therefore not ``fresh``. Its results were rounded to fp16 where the
blocks computed them. Imported by ``graph`` only when a plan has control flow.
"""

from __future__ import annotations

from typing import Any

import torch

from .ops.registry import as_tensor, number
from .plan import Block, Plan, Step, TensorInfo, argument_keys


def writes_state(steps: list[Step]) -> bool:
    from .graph import STATE_WRITES

    return any(s.op in STATE_WRITES or any(writes_state(b.steps) for b in s.blocks) for s in steps)


def _constant_keys(steps: list[Step]) -> set[str]:
    found: set[str] = set()
    for step in steps:
        found |= set(argument_keys(step.inputs.values(), "const"))
        for block in step.blocks:
            found |= _constant_keys(block.steps)
    return found


def block_module(
    block: Block, plan: Plan, shapes: dict[str, Any], device: str, layout: bool, fast: bool
) -> Any:
    """A block as a GraphModule taking its inputs, then its captured values (in order)."""
    from .graph import build_graph_module

    inputs = [
        TensorInfo(name, dtype, list(shape))
        for name, dtype, shape in zip(
            block.inputs, block.input_dtypes, block.input_shapes, strict=True
        )
    ]
    for name in block.captured:
        dtype, shape = shapes.get(name, ("", ()))
        inputs.append(TensorInfo(name, dtype, list(shape or ())))
    used = _constant_keys(block.steps)
    sub_plan = Plan(
        inputs=inputs,
        outputs=[TensorInfo(name, "", []) for name in block.outputs],
        steps=block.steps,
        constants={k: v for k, v in plan.constants.items() if k in used},
    )
    return build_graph_module(sub_plan, device=device, layout=layout, fast=fast, raw_inputs=True)


def build_control_flow(
    step: Step, plan: Plan, shapes: dict[str, Any], device: str, layout: bool, fast: bool
) -> Any:
    """The module running ``step``; called with the op's argument(s) (``pred``, or the loop
    variables), then each block's captured values, block by block."""
    blocks = [block_module(b, plan, shapes, device, layout, fast) for b in step.blocks]
    captured = [len(b.captured) for b in step.blocks]
    if step.op == "cond":
        module: Any = Cond(blocks[0], blocks[1], captured[0], device)
    elif step.op == "while_loop":
        count = len(step.inputs["loop_vars"]["list"])
        module = WhileLoop(blocks[0], blocks[1], count, captured[0], device)
    else:
        raise ValueError(f"{step.op} {step.name!r} is no control-flow op")
    module.writes_state = writes_state([step])
    return module


class Cond(torch.nn.Module):
    def __init__(self, true_block: Any, false_block: Any, true_captured: int, device: str):
        super().__init__()
        self.true_block = true_block
        self.false_block = false_block
        self.true_captured = true_captured
        self.device = device

    def forward(self, pred: Any, *captured: Any) -> tuple[torch.Tensor, ...]:
        if bool(number(pred)):
            results = self.true_block(*captured[: self.true_captured])
        else:
            results = self.false_block(*captured[self.true_captured :])
        return tuple(_tensor(v, self.device) for v in results)


class WhileLoop(torch.nn.Module):
    def __init__(
        self, cond_block: Any, body_block: Any, loop_vars: int, cond_captured: int, device: str
    ) -> None:
        super().__init__()
        self.cond_block = cond_block
        self.body_block = body_block
        self.loop_vars = loop_vars
        self.cond_captured = cond_captured
        self.device = device

    def forward(self, *arguments: Any) -> tuple[torch.Tensor, ...]:
        n, m = self.loop_vars, self.loop_vars + self.cond_captured
        values = [_tensor(v, self.device) for v in arguments[:n]]
        cond_captured, body_captured = arguments[n:m], arguments[m:]
        while bool(number(self.cond_block(*values, *cond_captured)[0])):
            values = [_tensor(v, self.device) for v in self.body_block(*values, *body_captured)]
        return tuple(values)


def _tensor(value: Any, device: str) -> torch.Tensor:
    """Loop variables and block results as tensors (a literal initial value: int32 / float32
    / bool, as every op reads them)."""
    if isinstance(value, torch.Tensor):
        return value
    return as_tensor(value).to(device)
