"""Sequence ops: scaled_dot_product_attention (iOS18 ``transformers.py``) and the recurrent
layers lstm, gru, rnn (``recurrent.py``: iOS15, fp16 from iOS17, gru's new inputs in iOS18).

Recurrent layers take x as (seq, batch, features) and weights as (gates * H, features) with
MIL's gate orders: lstm [input, forget, output, cell] (peephole [input, forget, output]),
gru [reset, output (new), update]. Where MIL's definitions leave the semantics open they are
read from the NeuralNetwork.proto layers the ops came from, and from coremltools' own op
tests (which run on Core ML):

* gru applies the reset gate to h before the recurrent matmul: o = g(W_o x + R_o (r * h) + b_o);
* lstm's ``clip`` bounds the cell state c_t (after its update, before the output peephole
  and h), as the proto's ``cellClipThreshold``;
* direction ``reverse`` runs the sequence from its end and returns the outputs in the order
  they were computed (not flipped back); ``bidirectional`` lstm returns the backward half
  aligned with the input's time steps (the proto's bidirectional layer).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .registry import OpView, as_tensor, number, register_op

if TYPE_CHECKING:
    import torch

# scaled_tanh is refused: NeuralNetwork.proto fixes alpha = 1.7159, beta = 2/3 for recurrent
# layers while coremltools' op tests treat it as plain tanh, so its values are not known.
_ACTIVATIONS = ("sigmoid", "tanh", "relu", "linear", "hard_sigmoid", "sigmoid_hard")


def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    import torch

    name = name.lower()
    if name == "sigmoid":
        return torch.sigmoid
    if name == "tanh":
        return torch.tanh
    if name == "relu":
        return torch.relu
    if name == "linear":
        return lambda t: t
    if name in ("hard_sigmoid", "sigmoid_hard"):
        # Recurrent layers fix alpha = 0.2, beta = 0.5 (the proto, and coremltools' tests).
        return lambda t: (0.2 * t + 0.5).clamp(0.0, 1.0)
    raise ValueError(f"activation {name!r} is not supported")


# --------------------------------------------------------------------------- checks


def _literal_check(view: OpView, key: str, allowed: tuple[Any, ...], default: Any) -> list[str]:
    if view.has(key) and not view.is_literal(key):
        return [f"{view.op} {view.name!r}: {key} computed at run time is not supported"]
    value = view.literal(key, default)
    if isinstance(value, str) and key.endswith("activation"):
        value = value.lower()
    if value not in allowed:
        return [
            f"{view.op} {view.name!r}: {key}={value!r} is not supported "
            f"(supported: {', '.join(map(repr, allowed))})"
        ]
    return []


def _recurrent_check(directions: tuple[str, ...], activations: dict[str, str]):
    def check(view: OpView) -> list[str]:
        reasons = _literal_check(view, "direction", directions, "forward")
        reasons += _literal_check(view, "output_sequence", (True, False), False)
        for key, default in activations.items():
            reasons += _literal_check(view, key, _ACTIVATIONS, default)
        if view.op == "gru":
            # iOS18's reset_after: its definition ("the reset gate is applied before the
            # elementwise matrix multiplication") does not say where r and the biases go, and
            # coremltools' own parity test of it against torch is marked failing.
            reasons += _literal_check(view, "reset_after", (False,), False)
        if view.op == "lstm" and view.has("clip"):
            clip = view.literal("clip")
            if not isinstance(clip, (int, float)) or not clip > 0:
                reasons.append(f"lstm {view.name!r}: clip must be a positive scalar, got {clip!r}")
        bidirectional = view.literal("direction", "forward") == "bidirectional"
        if view.op == "lstm" and bidirectional and not view.has("weight_hh_back"):
            reasons.append(f"lstm {view.name!r}: bidirectional needs the *_back weights")
        return reasons

    return check


# --------------------------------------------------------------------------- recurrences


def _float32(x: torch.Tensor) -> torch.Tensor:
    """fp16 program inputs may reach ops as float16 tensors (the graph only rounds float32
    ones); these ops mix them with float32 weights, so they compute in float32 throughout."""
    return x.float()


def _weights(value: Any, like: torch.Tensor) -> torch.Tensor | None:
    return None if value is None else as_tensor(value, like).float()


def _steps(x: torch.Tensor, reverse: bool) -> list[torch.Tensor]:
    """x's time steps in the order the layer processes them."""
    steps = list(x.unbind(0))
    return steps[::-1] if reverse else steps


def _lstm_pass(
    x: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias: torch.Tensor | None,
    peephole: torch.Tensor | None,
    acts: tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]],
    clip: float | None,
    reverse: bool,
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    gate, cell_gate, out_act = acts
    projected = x @ weight_ih.T  # every step's input projection at once
    if bias is not None:
        projected = projected + bias
    p_i, p_f, p_o = peephole.chunk(3) if peephole is not None else (None, None, None)
    outputs = []
    for step in _steps(projected, reverse):
        a_i, a_f, a_o, a_z = (step + h @ weight_hh.T).chunk(4, dim=-1)
        if p_i is not None:
            a_i, a_f = a_i + p_i * c, a_f + p_f * c
        i, f, z = gate(a_i), gate(a_f), cell_gate(a_z)
        c = f * c + i * z
        if clip is not None:
            c = c.clamp(-clip, clip)
        if p_o is not None:
            a_o = a_o + p_o * c
        h = gate(a_o) * out_act(c)
        outputs.append(h)
    return outputs, h, c


@register_op(
    "lstm",
    check=_recurrent_check(
        ("forward", "reverse", "bidirectional"),
        {"recurrent_activation": "sigmoid", "cell_activation": "tanh", "activation": "tanh"},
    ),
)
def lstm(
    x: torch.Tensor,
    initial_h: Any,
    initial_c: Any,
    weight_ih: Any,
    weight_hh: Any,
    bias: Any = None,
    peephole: Any = None,
    weight_ih_back: Any = None,
    weight_hh_back: Any = None,
    bias_back: Any = None,
    peephole_back: Any = None,
    direction: str = "forward",
    output_sequence: bool = False,
    recurrent_activation: str = "sigmoid",
    cell_activation: str = "tanh",
    activation: str = "tanh",
    clip: Any = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Outputs: every step's h (or the last, as (1, b, D*H)), the final h and the final c."""
    import torch

    x = _float32(x)
    acts = (
        _activation(recurrent_activation),
        _activation(cell_activation),
        _activation(activation),
    )
    limit = None if clip is None else float(number(clip))
    h0, c0 = as_tensor(initial_h, x).float(), as_tensor(initial_c, x).float()
    if direction != "bidirectional":
        outputs, h, c = _lstm_pass(
            x, h0, c0, _weights(weight_ih, x), _weights(weight_hh, x), _weights(bias, x),
            _weights(peephole, x), acts, limit, reverse=direction == "reverse",
        )  # fmt: skip
        sequence = torch.stack(outputs) if output_sequence else h.unsqueeze(0).clone()
        return sequence, h, c
    hidden = h0.shape[-1] // 2
    forward, h_f, c_f = _lstm_pass(
        x, h0[..., :hidden], c0[..., :hidden], _weights(weight_ih, x), _weights(weight_hh, x),
        _weights(bias, x), _weights(peephole, x), acts, limit, reverse=False,
    )  # fmt: skip
    backward, h_b, c_b = _lstm_pass(
        x, h0[..., hidden:], c0[..., hidden:], _weights(weight_ih_back, x),
        _weights(weight_hh_back, x), _weights(bias_back, x), _weights(peephole_back, x), acts,
        limit, reverse=True,
    )  # fmt: skip
    h, c = torch.cat([h_f, h_b], dim=-1), torch.cat([c_f, c_b], dim=-1)
    if output_sequence:
        # The backward half is aligned with the input's time steps.
        sequence = torch.cat([torch.stack(forward), torch.stack(backward[::-1])], dim=-1)
    else:
        sequence = h.unsqueeze(0).clone()
    return sequence, h, c


@register_op(
    "gru",
    check=_recurrent_check(
        ("forward", "reverse"), {"recurrent_activation": "sigmoid", "activation": "tanh"}
    ),
)
def gru(
    x: torch.Tensor,
    initial_h: Any,
    weight_ih: Any,
    weight_hh: Any,
    bias: Any = None,
    direction: str = "forward",
    output_sequence: bool = False,
    recurrent_activation: str = "sigmoid",
    activation: str = "tanh",
    reset_after: bool = False,
    input_bias: Any = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gates [r, o, z]; the reset gate scales h before the recurrent matmul of o. iOS18's
    input_bias then simply adds to bias (reset_after=True is refused)."""
    import torch

    x = _float32(x)
    gate, out_act = _activation(recurrent_activation), _activation(activation)
    w_ih, w_hh = _weights(weight_ih, x), _weights(weight_hh, x)
    hidden = w_hh.shape[-1]
    w_hr, w_ho, w_hz = w_hh.split(hidden)
    projected = x @ w_ih.T
    for b in (bias, input_bias):
        if b is not None:
            projected = projected + _weights(b, x)
    h = as_tensor(initial_h, x).float()
    outputs = []
    for step in _steps(projected, reverse=direction == "reverse"):
        a_r, a_o, a_z = step.split(hidden, dim=-1)
        r = gate(a_r + h @ w_hr.T)
        z = gate(a_z + h @ w_hz.T)
        o = out_act(a_o + (r * h) @ w_ho.T)
        h = (1 - z) * o + z * h
        outputs.append(h)
    sequence = torch.stack(outputs) if output_sequence else h.unsqueeze(0).clone()
    return sequence, h


@register_op("rnn", check=_recurrent_check(("forward", "reverse"), {"activation": "tanh"}))
def rnn(
    x: torch.Tensor,
    initial_h: Any,
    weight_ih: Any,
    weight_hh: Any,
    bias: Any = None,
    direction: str = "forward",
    output_sequence: bool = False,
    activation: str = "tanh",
) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    x = _float32(x)
    act = _activation(activation)
    w_hh = _weights(weight_hh, x)
    projected = x @ _weights(weight_ih, x).T
    if bias is not None:
        projected = projected + _weights(bias, x)
    h = as_tensor(initial_h, x).float()
    outputs = []
    for step in _steps(projected, reverse=direction == "reverse"):
        h = act(step + h @ w_hh.T)
        outputs.append(h)
    sequence = torch.stack(outputs) if output_sequence else h.unsqueeze(0).clone()
    return sequence, h


# --------------------------------------------------------------------------- attention


def _attention_check(view: OpView) -> list[str]:
    """The mask must broadcast into the scores' shape (query[:-1] + [S]) without widening it:
    MIL's output shape is the query's, so a mask that would broadcast the query is refused."""
    if not view.has("attn_mask"):
        return []
    query, key = view.shape("query"), view.shape("key")
    scores = (*query[:-1], key[-2] if len(key) >= 2 else None)
    mask = view.shape("attn_mask")
    if len(mask) > len(scores):
        return [f"scaled_dot_product_attention {view.name!r}: mask of rank {len(mask)} "
                f"is above the scores' rank {len(scores)}"]  # fmt: skip
    for m, s in zip(reversed(mask), reversed(scores), strict=False):
        if m is not None and s is not None and m not in (1, s):
            return [f"scaled_dot_product_attention {view.name!r}: mask of shape {mask} "
                    f"does not broadcast into the scores' shape {scores}"]  # fmt: skip
    return []


def _attention_rows(view: OpView) -> str | None:
    where = f"scaled_dot_product_attention {view.name!r}"
    for key in ("query", "key", "value"):
        if not view.is_row(key) or view.rank(key) < 3:
            return f"{where}: {key} is not a computed tensor of rank >= 3 (its batch axis)"
    if view.has("attn_mask"):
        mask, rank = view.shape("attn_mask"), view.rank("query")
        if view.is_row("attn_mask"):
            if len(mask) != rank or mask[0] != 1:
                return f"{where}: the computed mask {mask} broadcasts across rows"
        elif len(mask) == rank and mask[0] != 1:
            return f"{where}: the stored mask {mask} varies along the batch axis"
    return None


@register_op("scaled_dot_product_attention", check=_attention_check, rows=_attention_rows)
def scaled_dot_product_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: Any = None
) -> torch.Tensor:
    """softmax(q k^T / sqrt(E) + mask) v; a bool mask adds 0 where True, -inf where False
    (so a row masked everywhere is NaN, as in MIL's definition)."""
    import torch

    query, key, value = _float32(query), _float32(key), _float32(value)
    # As MIL: the product first, then the division by sqrt(E).
    scores = (query @ key.transpose(-2, -1)) / math.sqrt(query.shape[-1])
    if attn_mask is not None:
        mask = as_tensor(attn_mask, scores)
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, device=scores.device).masked_fill(~mask, -math.inf)
        widened = scores + mask.float()
        if widened.shape != scores.shape:
            raise ValueError(
                f"scaled_dot_product_attention: mask {tuple(mask.shape)} widens the scores "
                f"{tuple(scores.shape)}"
            )
        scores = widened
    return scores.softmax(dim=-1) @ value
