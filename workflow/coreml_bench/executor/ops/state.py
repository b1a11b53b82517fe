"""State ops (iOS18 ``states.py``; coremltools' ``coreml_update_state`` dialect op).

A state is a buffer the caller owns (``CompiledProgram.make_state``), passed to the graph as
a placeholder after the inputs and mutated in place: float states are float32 tensors holding
the state's values (fp16 values for an fp16 state), int32 / bool states their own dtype.

* ``read_state``: a copy of the buffer, so later in-place rewrites (fp16 rounding, a unary op
  overwriting its input) never touch the state. Not ``exact_fp16``: the copy of an fp16 state
  is rounded, so a buffer the caller filled with float32 values reads as fp16 would.
* ``coreml_update_state``: writes ``value`` into the buffer (rounded to fp16 for an fp16
  state) and returns a fresh copy of it. The graph keeps these steps even when nothing reads
  their result (``graph.STATE_WRITES``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import BuildContext, Computed, as_tensor, register_op

if TYPE_CHECKING:
    import torch


@register_op("read_state")
def read_state(input: torch.Tensor) -> torch.Tensor:
    return input.clone()


def write_state_fp16(state: torch.Tensor, value: Any) -> torch.Tensor:
    """``coreml_update_state`` on an fp16 state: the buffer only ever holds fp16 values."""
    import torch

    tensor = as_tensor(value, like=state)
    state.copy_(tensor.to(torch.float16))
    return state.clone()


def _update_specialized(inputs: dict[str, Any], context: BuildContext) -> Any:
    state = inputs.get("state")
    if isinstance(state, Computed) and state.dtype == "fp16":
        return write_state_fp16, ("state", "value"), False
    return coreml_update_state, ("state", "value"), False


# exact_fp16: the value is the state's own type (MIL checks), so it is fp16 already.
@register_op("coreml_update_state", exact_fp16=True, specialize=_update_specialized)
def coreml_update_state(state: torch.Tensor, value: Any) -> torch.Tensor:
    state.copy_(as_tensor(value, like=state))
    return state.clone()
