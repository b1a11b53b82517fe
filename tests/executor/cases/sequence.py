"""Conformance cases: scaled_dot_product_attention (iOS18 ``transformers.py``) and the
recurrent layers lstm, gru, rnn (``recurrent.py``, iOS15 / iOS17 / iOS18).

MIL has no value inference for the recurrent layers: their references below are written from
the documented equations (with the points the definitions leave open read as the executor's
module docstring says: gru resets h before its recurrent matmul, lstm's clip bounds the cell
state, ``reverse`` returns steps in the order computed, bidirectional aligns the backward half
with the input's time steps). Weights are fp16-representable, so the fp16 programs hold the
same weights as the float64 references.
"""

from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from mil_conformance import Case, Refusal, lit

rng = np.random.default_rng(0)
SEQ, BATCH, IN, HID = 4, 2, 3, 5


def _fp16_exact(shape: tuple[int, ...], scale: float = 0.5) -> np.ndarray:
    return (rng.normal(size=shape) * scale).astype(np.float16).astype(np.float32)


def _act(name: str):
    return {
        "sigmoid": lambda t: 1.0 / (1.0 + np.exp(-t)),
        "tanh": np.tanh,
        "relu": lambda t: np.maximum(t, 0.0),
        "linear": lambda t: t,
        "hard_sigmoid": lambda t: np.clip(0.2 * t + 0.5, 0.0, 1.0),
        "sigmoid_hard": lambda t: np.clip(0.2 * t + 0.5, 0.0, 1.0),
    }[name]


X = _fp16_exact((SEQ, BATCH, IN), 1.0)
H0 = _fp16_exact((BATCH, HID), 0.5)
C0 = _fp16_exact((BATCH, HID), 0.5)
H0_BI = _fp16_exact((BATCH, 2 * HID), 0.5)
C0_BI = _fp16_exact((BATCH, 2 * HID), 0.5)


def _time_order(steps: np.ndarray, reverse: bool) -> np.ndarray:
    return steps[::-1] if reverse else steps


# --------------------------------------------------------------------------- lstm

L_W = _fp16_exact((4 * HID, IN))
L_R = _fp16_exact((4 * HID, HID))
L_B = _fp16_exact((4 * HID,))
L_P = _fp16_exact((3 * HID,))
L_W_BACK = _fp16_exact((4 * HID, IN))
L_R_BACK = _fp16_exact((4 * HID, HID))
L_B_BACK = _fp16_exact((4 * HID,))
L_P_BACK = _fp16_exact((3 * HID,))


def _lstm_direction(x, h, c, w, r, b, p, acts, clip, reverse):
    """One direction, from MIL's equations; gates [i, f, o, z], peephole [i, f, o]."""
    f_gate, g_cell, h_out = (_act(a) for a in acts)
    w_i, w_f, w_o, w_z = np.split(w.astype(np.float64), 4)
    r_i, r_f, r_o, r_z = np.split(r.astype(np.float64), 4)
    b_i, b_f, b_o, b_z = np.split(np.zeros(4 * HID) if b is None else b.astype(np.float64), 4)
    p_i, p_f, p_o = np.split(np.zeros(3 * HID) if p is None else p.astype(np.float64), 3)
    outputs = []
    for x_t in _time_order(x, reverse):
        i = f_gate(x_t @ w_i.T + h @ r_i.T + b_i + p_i * c)
        f = f_gate(x_t @ w_f.T + h @ r_f.T + b_f + p_f * c)
        z = g_cell(x_t @ w_z.T + h @ r_z.T + b_z)
        c = f * c + i * z
        if clip is not None:
            c = np.clip(c, -clip, clip)
        o = f_gate(x_t @ w_o.T + h @ r_o.T + b_o + p_o * c)
        h = o * h_out(c)
        outputs.append(h)
    return np.stack(outputs), h, c


def _lstm_reference(direction="forward", output_sequence=False, bias=None, peephole=None,
                    acts=("sigmoid", "tanh", "tanh"), clip=None, back=(None, None)):  # fmt: skip
    def reference(x, initial_h=None, initial_c=None):
        width = 2 * HID if direction == "bidirectional" else HID
        h0 = np.zeros((BATCH, width)) if initial_h is None else initial_h
        c0 = np.zeros((BATCH, width)) if initial_c is None else initial_c
        if direction != "bidirectional":
            seq, h, c = _lstm_direction(
                x, h0, c0, L_W, L_R, bias, peephole, acts, clip, direction == "reverse"
            )
        else:
            seq_f, h_f, c_f = _lstm_direction(
                x, h0[:, :HID], c0[:, :HID], L_W, L_R, bias, peephole, acts, clip, False
            )
            seq_b, h_b, c_b = _lstm_direction(
                x,
                h0[:, HID:],
                c0[:, HID:],
                L_W_BACK,
                L_R_BACK,
                back[0],
                back[1],
                acts,
                clip,
                True,
            )
            seq = np.concatenate([seq_f, seq_b[::-1]], axis=-1)
            h, c = np.concatenate([h_f, h_b], -1), np.concatenate([c_f, c_b], -1)
        return (seq if output_sequence else h[None]), h, c

    return reference


def _lstm_build(direction="forward", output_sequence=False, bias=None, peephole=None,
                acts=None, clip=None, back=(None, None), const_states=False):  # fmt: skip
    def build(x, initial_h=None, initial_c=None):
        width = 2 * HID if direction == "bidirectional" else HID
        if const_states:
            initial_h = initial_c = lit(x, np.zeros((BATCH, width)))
        arguments = {
            "x": x, "initial_h": initial_h, "initial_c": initial_c,
            "weight_ih": lit(x, L_W), "weight_hh": lit(x, L_R),
            "direction": direction, "output_sequence": output_sequence,
        }  # fmt: skip
        if bias is not None:
            arguments["bias"] = lit(x, bias)
        if peephole is not None:
            arguments["peephole"] = lit(x, peephole)
        if direction == "bidirectional":
            arguments["weight_ih_back"] = lit(x, L_W_BACK)
            arguments["weight_hh_back"] = lit(x, L_R_BACK)
            if back[0] is not None:
                arguments["bias_back"] = lit(x, back[0])
            if back[1] is not None:
                arguments["peephole_back"] = lit(x, back[1])
        if acts is not None:
            arguments["recurrent_activation"] = acts[0]
            arguments["cell_activation"] = acts[1]
            arguments["activation"] = acts[2]
        if clip is not None:
            arguments["clip"] = lit(x, clip)
        return mb.lstm(**arguments)

    return build


def _lstm_case(label, opset="iOS18", dtypes=("fp32", "fp16"), const_states=False, **mode):
    bidirectional = mode.get("direction") == "bidirectional"
    inputs = {"x": X}
    if not const_states:
        inputs |= {"initial_h": H0_BI, "initial_c": C0_BI} if bidirectional else {
            "initial_h": H0, "initial_c": C0}  # fmt: skip
    reference_mode = {k: v for k, v in mode.items()}
    if reference_mode.get("acts") is None:
        reference_mode.pop("acts", None)
    return Case("lstm", label, inputs, _lstm_build(const_states=const_states, **mode),
                reference=_lstm_reference(**reference_mode), tolerance=2.0, dtypes=dtypes,
                opset=opset)  # fmt: skip


# --------------------------------------------------------------------------- gru

G_W = _fp16_exact((3 * HID, IN))
G_R = _fp16_exact((3 * HID, HID))
G_B = _fp16_exact((3 * HID,))
G_B_IN = _fp16_exact((3 * HID,))


def _gru_reference(direction="forward", output_sequence=False, bias=None, input_bias=None,
                   acts=("sigmoid", "tanh")):  # fmt: skip
    """Gates [r, o, z]: r, z = f(W x + R h + b); o = g(W_o x + R_o (r * h) + b_o);
    h = (1 - z) o + z h."""
    f_gate, g_out = _act(acts[0]), _act(acts[1])
    w_r, w_o, w_z = np.split(G_W.astype(np.float64), 3)
    r_r, r_o, r_z = np.split(G_R.astype(np.float64), 3)
    total = np.zeros(3 * HID)
    for b in (bias, input_bias):
        if b is not None:
            total = total + b.astype(np.float64)
    b_r, b_o, b_z = np.split(total, 3)

    def reference(x, initial_h):
        h, outputs = initial_h, []
        for x_t in _time_order(x, direction == "reverse"):
            r = f_gate(x_t @ w_r.T + h @ r_r.T + b_r)
            z = f_gate(x_t @ w_z.T + h @ r_z.T + b_z)
            o = g_out(x_t @ w_o.T + (r * h) @ r_o.T + b_o)
            h = (1 - z) * o + z * h
            outputs.append(h)
        return (np.stack(outputs) if output_sequence else h[None]), h

    return reference


def _gru_build(direction="forward", output_sequence=False, bias=None, input_bias=None,
               acts=None, reset_after=None):  # fmt: skip
    def build(x, initial_h):
        arguments = {
            "x": x, "initial_h": initial_h, "weight_ih": lit(x, G_W), "weight_hh": lit(x, G_R),
            "direction": direction, "output_sequence": output_sequence,
        }  # fmt: skip
        if bias is not None:
            arguments["bias"] = lit(x, bias)
        if input_bias is not None:
            arguments["input_bias"] = lit(x, input_bias)
        if reset_after is not None:
            arguments["reset_after"] = reset_after
        if acts is not None:
            arguments["recurrent_activation"], arguments["activation"] = acts
        return mb.gru(**arguments)

    return build


def _gru_case(label, opset="iOS18", dtypes=("fp32", "fp16"), reset_after=None, **mode):
    reference_mode = {k: v for k, v in mode.items() if v is not None}
    build = _gru_build(reset_after=reset_after, **mode)
    return Case("gru", label, {"x": X, "initial_h": H0}, build,
                reference=_gru_reference(**reference_mode), tolerance=2.0, dtypes=dtypes,
                opset=opset)  # fmt: skip


# --------------------------------------------------------------------------- rnn

R_W = _fp16_exact((HID, IN))
R_R = _fp16_exact((HID, HID))
R_B = _fp16_exact((HID,))


def _rnn_reference(direction="forward", output_sequence=False, bias=None, activation="tanh"):
    act = _act(activation)
    b = np.zeros(HID) if bias is None else bias.astype(np.float64)

    def reference(x, initial_h):
        h, outputs = initial_h, []
        for x_t in _time_order(x, direction == "reverse"):
            h = act(x_t @ R_W.T.astype(np.float64) + h @ R_R.T.astype(np.float64) + b)
            outputs.append(h)
        return (np.stack(outputs) if output_sequence else h[None]), h

    return reference


def _rnn_build(direction="forward", output_sequence=False, bias=None, activation=None):
    def build(x, initial_h):
        arguments = {
            "x": x, "initial_h": initial_h, "weight_ih": lit(x, R_W), "weight_hh": lit(x, R_R),
            "direction": direction, "output_sequence": output_sequence,
        }  # fmt: skip
        if bias is not None:
            arguments["bias"] = lit(x, bias)
        if activation is not None:
            arguments["activation"] = activation
        return mb.rnn(**arguments)

    return build


def _rnn_case(label, opset="iOS18", dtypes=("fp32", "fp16"), **mode):
    reference_mode = {k: v for k, v in mode.items() if v is not None}
    return Case("rnn", label, {"x": X, "initial_h": H0}, _rnn_build(**mode),
                reference=_rnn_reference(**reference_mode), tolerance=2.0, dtypes=dtypes,
                opset=opset)  # fmt: skip


# --------------------------------------------------------------------------- attention

Q3, K3, V3 = (rng.normal(size=s).astype(np.float32) for s in ((1, 4, 8), (1, 6, 8), (1, 6, 5)))
Q4, K4, V4 = (
    rng.normal(size=s).astype(np.float32) for s in ((1, 2, 4, 8), (1, 2, 6, 8), (1, 2, 6, 5))
)
Q5, K5, V5 = (
    rng.normal(size=s).astype(np.float32)
    for s in ((1, 2, 3, 4, 8), (1, 2, 3, 6, 8), (1, 2, 3, 6, 5))
)
CAUSAL = np.tril(np.ones((4, 6), dtype=bool), k=2)
ROW_MASKED = rng.random((1, 2, 4, 6)) > 0.4
ROW_MASKED[0, 1, 2, :] = False  # a row masked everywhere: NaN in MIL's definition
FLOAT_MASK = (rng.normal(size=(1, 2, 4, 6)) * 2).astype(np.float32)
FLOAT_MASK[0, 0, 1, 3] = -np.inf
KEY_BIAS = rng.normal(size=(6,)).astype(np.float32)


def _sdpa(**extra):
    def build(query, key, value, attn_mask=None):
        if "mask" in extra:
            attn_mask = extra["mask"]
            if attn_mask.dtype.kind == "f":
                attn_mask = lit(query, attn_mask)
        if attn_mask is None:
            return mb.scaled_dot_product_attention(query=query, key=key, value=value)
        return mb.scaled_dot_product_attention(
            query=query, key=key, value=value, attn_mask=attn_mask
        )

    return build


def _sdpa_case(label, q, k, v, mask_input=None, **extra):
    inputs = {"query": q, "key": k, "value": v}
    if mask_input is not None:
        inputs["attn_mask"] = mask_input
    # MIL's value inference computes the fp16 programs in fp16 numpy (two matmuls, softmax):
    # up to one fp16 epsilon of the output's scale off (measured), hence the tolerance.
    return Case("scaled_dot_product_attention", label, inputs, _sdpa(**extra), tolerance=2.0)


CASES = [
    # scaled_dot_product_attention: ranks 3-5, E != EV, L != S; masks bool / float, as
    # stored constants or program inputs, of full or lower rank.
    _sdpa_case("rank 3, no mask", Q3, K3, V3),
    _sdpa_case("rank 4, no mask", Q4, K4, V4),
    _sdpa_case("rank 5, no mask", Q5, K5, V5),
    _sdpa_case("rank 4, stored bool mask (L, S)", Q4, K4, V4, mask=CAUSAL),
    _sdpa_case(
        "rank 4, bool mask input, a row masked everywhere", Q4, K4, V4, mask_input=ROW_MASKED
    ),
    _sdpa_case("rank 4, float mask input with -inf", Q4, K4, V4, mask_input=FLOAT_MASK),
    _sdpa_case("rank 3, stored float mask (S,)", Q3, K3, V3, mask=KEY_BIAS),
    _sdpa_case("rank 5, stored bool mask (L, S)", Q5, K5, V5, mask=CAUSAL),
    # lstm
    _lstm_case(
        "forward, last step, defaults",
    ),
    _lstm_case("forward, sequence, bias", output_sequence=True, bias=L_B),
    _lstm_case("reverse, sequence, bias", direction="reverse", output_sequence=True, bias=L_B),
    _lstm_case("reverse, last step", direction="reverse"),
    _lstm_case(
        "forward, peephole, clip=0.3", output_sequence=True, bias=L_B, peephole=L_P, clip=0.3
    ),
    _lstm_case(
        "bidirectional, sequence, bias+peephole both ways",
        direction="bidirectional",
        output_sequence=True,
        bias=L_B,
        peephole=L_P,
        back=(L_B_BACK, L_P_BACK),
    ),
    _lstm_case(
        "bidirectional, last step, no back bias, clip=1",
        direction="bidirectional",
        bias=L_B,
        clip=1.0,
    ),
    _lstm_case(
        "activations hard_sigmoid/relu/linear",
        output_sequence=True,
        bias=L_B,
        acts=("hard_sigmoid", "relu", "linear"),
    ),
    _lstm_case(
        "activations tanh/sigmoid/relu",
        output_sequence=True,
        bias=L_B,
        acts=("tanh", "sigmoid", "relu"),
    ),
    _lstm_case("activations linear/tanh/sigmoid", bias=L_B, acts=("linear", "tanh", "sigmoid")),
    _lstm_case("stored zero initial states", const_states=True, output_sequence=True, bias=L_B),
    _lstm_case(
        "iOS15 (fp32 only)", opset="iOS15", dtypes=("fp32",), output_sequence=True, bias=L_B
    ),
    _lstm_case("iOS17", opset="iOS17", output_sequence=True, bias=L_B, peephole=L_P),
    # gru
    _gru_case("forward, last step, defaults"),
    _gru_case("forward, sequence, bias", output_sequence=True, bias=G_B),
    _gru_case("reverse, sequence, bias", direction="reverse", output_sequence=True, bias=G_B),
    _gru_case("reverse, last step", direction="reverse", bias=G_B),
    _gru_case("activations tanh/sigmoid", output_sequence=True, bias=G_B, acts=("tanh", "sigmoid")),
    _gru_case(
        "activations hard_sigmoid/relu",
        output_sequence=True,
        bias=G_B,
        acts=("hard_sigmoid", "relu"),
    ),
    _gru_case(
        "activations sigmoid_hard/linear",
        output_sequence=True,
        bias=G_B,
        acts=("sigmoid_hard", "linear"),
    ),
    _gru_case(
        "iOS18 input_bias, reset_after=False",
        output_sequence=True,
        bias=G_B,
        input_bias=G_B_IN,
        reset_after=False,
    ),
    _gru_case("iOS18 input_bias only", input_bias=G_B_IN),
    _gru_case("iOS15 (fp32 only)", opset="iOS15", dtypes=("fp32",), output_sequence=True, bias=G_B),
    _gru_case("iOS17", opset="iOS17", output_sequence=True, bias=G_B),
    # rnn
    _rnn_case("forward, last step, defaults"),
    _rnn_case("forward, sequence, bias", output_sequence=True, bias=R_B),
    _rnn_case("reverse, sequence, bias", direction="reverse", output_sequence=True, bias=R_B),
    _rnn_case("reverse, last step", direction="reverse"),
    _rnn_case("activation relu", output_sequence=True, bias=R_B, activation="relu"),
    _rnn_case("activation sigmoid", output_sequence=True, bias=R_B, activation="sigmoid"),
    _rnn_case("activation linear", output_sequence=True, bias=R_B, activation="linear"),
    _rnn_case("activation sigmoid_hard", output_sequence=True, bias=R_B, activation="sigmoid_hard"),
    _rnn_case("activation hard_sigmoid", bias=R_B, activation="hard_sigmoid"),
    _rnn_case("iOS15 (fp32 only)", opset="iOS15", dtypes=("fp32",), output_sequence=True, bias=R_B),
    _rnn_case("iOS17", opset="iOS17", output_sequence=True, bias=R_B),
]

_RNN_INPUTS = {"x": X, "initial_h": H0}

REFUSALS = [
    Refusal("lstm", "cell_activation=scaled_tanh", {"x": X, "initial_h": H0, "initial_c": C0},
            _lstm_build(acts=("sigmoid", "scaled_tanh", "tanh")), "cell_activation='scaled_tanh'"),
    Refusal("lstm", "clip=-1", {"x": X, "initial_h": H0, "initial_c": C0},
            _lstm_build(clip=-1.0), "clip must be a positive scalar"),
    Refusal("gru", "reset_after=True", _RNN_INPUTS, _gru_build(bias=G_B, reset_after=True),
            "reset_after=True"),
    Refusal("gru", "activation=scaled_tanh", _RNN_INPUTS,
            _gru_build(acts=("sigmoid", "scaled_tanh")), "activation='scaled_tanh'"),
    Refusal("gru", "activation=softsign", _RNN_INPUTS, _gru_build(acts=("softsign", "tanh")),
            "recurrent_activation='softsign'"),
    Refusal("rnn", "activation=scaled_tanh", _RNN_INPUTS, _rnn_build(activation="scaled_tanh"),
            "activation='scaled_tanh'"),
    Refusal("scaled_dot_product_attention", "mask widening the query's batch dims",
            {"query": Q4[:, :1], "key": K4[:, :1], "value": V4[:, :1]},
            _sdpa(mask=np.ones((1, 3, 4, 6), dtype=bool)), "does not broadcast into"),
]  # fmt: skip
