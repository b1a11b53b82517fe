"""Run the ML program inside an ``.mlpackage`` op by op with torch tensors (off Apple hardware).

Core ML predicts only on macOS. This executor measures the artifact itself elsewhere: it loads
the package's MIL program with coremltools (spec + weight file, Linux-safe), decompresses every
``constexpr_*`` weight to exactly the values Core ML would compute, and evaluates the ops in
program order with torch, batched, on CPU or CUDA.

fp16 semantics: weights are fp16 values held in float32; every op whose MIL output type is fp16
has its result rounded to fp16, so activations carry fp16 precision between ops while each op
accumulates in float32 (as Core ML's GPU and Neural Engine do). Activation ``quantize`` /
``dequantize`` ops (W8A8 programs) are executed, not skipped.

Each op follows its definition in coremltools' MIL op set (``coremltools.converters.mil.mil.ops
.defs``). An op the executor does not know stops it before anything runs, with every
unsupported op type of the program listed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class UnsupportedOpError(RuntimeError):
    """The program uses ops this executor does not implement (named, all at once)."""


OpFunction = Callable[[dict[str, Any], int], Any]
OPS: dict[str, OpFunction] = {}


def _op(*names: str) -> Callable[[OpFunction], OpFunction]:
    def register(function: OpFunction) -> OpFunction:
        for name in names:
            OPS[name] = function
        return function

    return register


def _int_list(value: Any) -> list[int]:
    return [int(v) for v in np.asarray(value).reshape(-1)]


def _scalar(value: Any) -> Any:
    array = np.asarray(value)
    return array.item() if array.size == 1 else array


def _tensor(value: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    import torch

    if isinstance(value, torch.Tensor):
        return value
    array = np.asarray(value)
    tensor = torch.from_numpy(array.astype(np.float32) if array.dtype.kind == "f" else array)
    return tensor.to(like.device) if like is not None else tensor


# ------------------------------------------------------------------------------ elementwise


@_op("add", "sub", "mul", "real_div", "maximum", "minimum", "pow")
def _binary(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch

    x, y = a["x"], a["y"]
    like = x if isinstance(x, torch.Tensor) else y
    x, y = _tensor(x, like), _tensor(y, like)
    return {
        "add": torch.add,
        "sub": torch.sub,
        "mul": torch.mul,
        "real_div": torch.div,
        "maximum": torch.maximum,
        "minimum": torch.minimum,
        "pow": torch.pow,
    }[a["__op__"]](x, y)


@_op("relu", "sigmoid", "silu", "tanh", "sqrt", "square", "exp", "rsqrt", "abs")
def _unary(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch

    x = a["x"]
    epsilon = float(_scalar(a.get("epsilon", 1e-12)))
    return {
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "silu": torch.nn.functional.silu,
        "tanh": torch.tanh,
        "sqrt": torch.sqrt,
        "square": torch.square,
        "exp": torch.exp,
        "rsqrt": lambda t: torch.rsqrt(t + epsilon),
        "abs": torch.abs,
    }[a["__op__"]](x)


@_op("clip")
def _clip(a: dict[str, Any], batch: int) -> torch.Tensor:
    return a["x"].clamp(float(_scalar(a["alpha"])), float(_scalar(a["beta"])))


@_op("sigmoid_hard")
def _sigmoid_hard(a: dict[str, Any], batch: int) -> torch.Tensor:
    alpha, beta = float(_scalar(a.get("alpha", 0.2))), float(_scalar(a.get("beta", 0.5)))
    # One new tensor, then in place: this op runs on every hard-swish activation.
    return a["x"].mul(alpha).add_(beta).clamp_(0.0, 1.0)


@_op("thresholded_relu")
def _thresholded_relu(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch.nn.functional as F

    # y = x where x > alpha, else 0: exactly F.threshold, one fused kernel.
    return F.threshold(a["x"], float(_scalar(a.get("alpha", 1.0))), 0.0)


@_op("gelu")
def _gelu(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch

    mode = str(_scalar(a.get("mode", "EXACT")))
    approximate = "tanh" if mode == "TANH_APPROXIMATION" else "none"
    if mode == "SIGMOID_APPROXIMATION":
        return a["x"] * torch.sigmoid(1.702 * a["x"])
    return torch.nn.functional.gelu(a["x"], approximate=approximate)


@_op("softmax")
def _softmax(a: dict[str, Any], batch: int) -> torch.Tensor:
    return a["x"].softmax(dim=int(_scalar(a.get("axis", -1))))


@_op("cast")
def _cast(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch

    dtype = str(_scalar(a["dtype"]))
    x = _tensor(a["x"])
    if dtype.startswith("fp"):
        # fp16 outputs are rounded after the op (see ``_round_fp16``); keep float32 here.
        return x.float()
    if dtype == "bool":
        return x != 0
    return x.round().to(torch.int64) if x.is_floating_point() else x.to(torch.int64)


# -------------------------------------------------------------------------- linear algebra


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> int:
    effective = (kernel - 1) * dilation + 1
    return max((math.ceil(size / stride) - 1) * stride + effective - size, 0)


def _spatial_padding(a: dict[str, Any], x: torch.Tensor, kernel: list[int]) -> list[int]:
    """MIL padding as [before_0, after_0, before_1, after_1, ...] over the spatial dims."""
    pad_type = str(_scalar(a.get("pad_type", "valid")))
    n = len(kernel)
    if pad_type == "custom":
        return _int_list(a["pad"])
    if pad_type == "valid":
        return [0] * (2 * n)
    strides = _int_list(a.get("strides", [1] * n))
    dilations = _int_list(a.get("dilations", [1] * n))
    pads = []
    for i in range(n):
        total = _same_padding(x.shape[2 + i], kernel[i], strides[i], dilations[i])
        before = total // 2 if pad_type == "same" else total - total // 2
        pads += [before, total - before]
    return pads


def _torch_pad(pads: list[int]) -> list[int]:
    """[b0, a0, b1, a1, ...] (first dim first) → torch's order (last dim first)."""
    pairs = [pads[i : i + 2] for i in range(0, len(pads), 2)]
    return [p for pair in reversed(pairs) for p in pair]


@_op("conv")
def _conv(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch.nn.functional as F

    x, weight = a["x"], _tensor(a["weight"], a["x"])
    n = weight.ndim - 2
    pads = _spatial_padding(a, x, list(weight.shape[2:]))
    begin, end = pads[0::2], pads[1::2]
    padding = begin
    if begin != end:  # torch pads symmetrically; pad the input itself otherwise
        x, padding = F.pad(x, _torch_pad(pads)), [0] * n
    conv = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
    bias = a.get("bias")
    # Padding inside the conv call, not by F.pad: oneDNN then picks kernels ~3x faster.
    return conv(
        x,
        weight,
        None if bias is None else _tensor(bias, x),
        stride=_int_list(a.get("strides", [1] * n)),
        padding=padding,
        dilation=_int_list(a.get("dilations", [1] * n)),
        groups=int(_scalar(a.get("groups", 1))),
    )


@_op("conv_transpose")
def _conv_transpose(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch.nn.functional as F

    x, weight = a["x"], _tensor(a["weight"], a["x"])
    n = weight.ndim - 2
    if str(_scalar(a.get("pad_type", "valid"))) not in ("valid", "custom"):
        raise UnsupportedOpError("conv_transpose with pad_type same is not supported")
    pads = _int_list(a.get("pad", [0] * (2 * n)))
    if any(pads[0::2][i] != pads[1::2][i] for i in range(n)):
        raise UnsupportedOpError(f"conv_transpose with asymmetric padding {pads}")
    conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[n - 1]
    bias = a.get("bias")
    return conv(
        x,
        weight,
        None if bias is None else _tensor(bias, x),
        stride=_int_list(a.get("strides", [1] * n)),
        padding=pads[0::2],
        dilation=_int_list(a.get("dilations", [1] * n)),
        groups=int(_scalar(a.get("groups", 1))),
    )


@_op("linear")
def _linear(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch.nn.functional as F

    x = a["x"]
    bias = a.get("bias")
    return F.linear(x, _tensor(a["weight"], x), None if bias is None else _tensor(bias, x))


@_op("matmul")
def _matmul(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch

    x, y = a["x"], a["y"]
    like = x if isinstance(x, torch.Tensor) else y
    x, y = _tensor(x, like), _tensor(y, like)
    if bool(_scalar(a.get("transpose_x", False))):
        x = x.transpose(-1, -2)
    if bool(_scalar(a.get("transpose_y", False))):
        y = y.transpose(-1, -2)
    return torch.matmul(x, y)


# --------------------------------------------------------------------------- normalisation


def _channel_shape(x: torch.Tensor) -> list[int]:
    return [1, -1] + [1] * (x.ndim - 2)


@_op("batch_norm")
def _batch_norm(a: dict[str, Any], batch: int) -> torch.Tensor:
    x = a["x"]
    shape = _channel_shape(x)
    mean, variance = _tensor(a["mean"], x).view(shape), _tensor(a["variance"], x).view(shape)
    y = (x - mean) / (variance + float(_scalar(a.get("epsilon", 1e-5)))).sqrt()
    if a.get("gamma") is not None:
        y = y * _tensor(a["gamma"], x).view(shape)
    if a.get("beta") is not None:
        y = y + _tensor(a["beta"], x).view(shape)
    return y


@_op("layer_norm")
def _layer_norm(a: dict[str, Any], batch: int) -> torch.Tensor:
    x = a["x"]
    axes = _int_list(a.get("axes", list(range(x.ndim))))
    mean = x.mean(dim=axes, keepdim=True)
    variance = ((x - mean) ** 2).mean(dim=axes, keepdim=True)
    y = (x - mean) / (variance + float(_scalar(a.get("epsilon", 1e-5)))).sqrt()
    if a.get("gamma") is not None:
        y = y * _tensor(a["gamma"], x)
    if a.get("beta") is not None:
        y = y + _tensor(a["beta"], x)
    return y


# --------------------------------------------------------------------------------- pooling


def _pool(a: dict[str, Any], kind: str) -> torch.Tensor:
    import torch.nn.functional as F

    x = a["x"]
    kernel = _int_list(a["kernel_sizes"])
    n = len(kernel)
    strides = _int_list(a.get("strides", [1] * n))
    pads = _spatial_padding(a, x, kernel)
    ceil_mode = bool(_scalar(a.get("ceil_mode", False)))
    if kind == "max":
        if any(pads):
            x = F.pad(x, _torch_pad(pads), value=-math.inf)
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[n - 1]
        return pool(x, kernel, strides, ceil_mode=ceil_mode)
    exclude = bool(_scalar(a.get("exclude_padding_from_average", False)))
    padded = F.pad(x, _torch_pad(pads)) if any(pads) else x
    pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
    total = pool(padded, kernel, strides, ceil_mode=ceil_mode)
    if not exclude or not any(pads):
        return total
    ones = F.pad(x.new_ones((1, 1, *x.shape[2:])), _torch_pad(pads))
    return total / pool(ones, kernel, strides, ceil_mode=ceil_mode)


@_op("max_pool")
def _max_pool(a: dict[str, Any], batch: int) -> torch.Tensor:
    return _pool(a, "max")


@_op("avg_pool")
def _avg_pool(a: dict[str, Any], batch: int) -> torch.Tensor:
    return _pool(a, "avg")


@_op("reduce_mean", "reduce_sum", "reduce_max", "reduce_min")
def _reduce(a: dict[str, Any], batch: int) -> torch.Tensor:
    x = a["x"]
    axes = a.get("axes")
    dims = list(range(x.ndim)) if axes is None else _int_list(axes)
    keep = bool(_scalar(a.get("keep_dims", False)))
    op = a["__op__"]
    if op == "reduce_mean":
        return x.mean(dim=dims, keepdim=keep)
    if op == "reduce_sum":
        return x.sum(dim=dims, keepdim=keep)
    out = x
    for dim in sorted((d % x.ndim for d in dims), reverse=True):
        out = (out.amax if op == "reduce_max" else out.amin)(dim=dim, keepdim=keep)
    return out


# ----------------------------------------------------------------------------- tensor shape


def _batched_shape(shape: list[int], x: torch.Tensor, batch: int) -> list[int]:
    """The program was converted for batch 1: a target shape led by that 1 takes the batch."""
    if batch != 1 and shape and shape[0] == 1 and x.shape[0] == batch:
        return [batch, *shape[1:]]
    return shape


@_op("reshape")
def _reshape(a: dict[str, Any], batch: int) -> torch.Tensor:
    x = a["x"]
    return x.reshape(_batched_shape(_int_list(a["shape"]), x, batch))


@_op("transpose")
def _transpose(a: dict[str, Any], batch: int) -> torch.Tensor:
    return a["x"].permute(_int_list(a["perm"]))


@_op("squeeze")
def _squeeze(a: dict[str, Any], batch: int) -> torch.Tensor:
    x = a["x"]
    axes = a.get("axes")
    if axes is None:
        return x.squeeze()
    for axis in sorted((d % x.ndim for d in _int_list(axes)), reverse=True):
        x = x.squeeze(axis)
    return x


@_op("expand_dims")
def _expand_dims(a: dict[str, Any], batch: int) -> torch.Tensor:
    x = a["x"]
    rank = x.ndim + len(_int_list(a["axes"]))
    for axis in sorted(d % rank for d in _int_list(a["axes"])):
        x = x.unsqueeze(axis)
    return x


@_op("concat")
def _concat(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch

    values = a["values"]
    like = next(v for v in values if isinstance(v, torch.Tensor))
    if bool(_scalar(a.get("interleave", False))):
        raise UnsupportedOpError("concat with interleave=True is not supported")
    return torch.cat([_tensor(v, like) for v in values], dim=int(_scalar(a["axis"])))


@_op("split")
def _split(a: dict[str, Any], batch: int) -> tuple[torch.Tensor, ...]:
    x = a["x"]
    axis = int(_scalar(a["axis"]))
    if a.get("split_sizes") is not None:
        return tuple(x.split(_int_list(a["split_sizes"]), dim=axis))
    return tuple(x.chunk(int(_scalar(a["num_splits"])), dim=axis))


@_op("tile")
def _tile(a: dict[str, Any], batch: int) -> torch.Tensor:
    return a["x"].repeat(_int_list(a["reps"]))


@_op("pad")
def _pad(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch.nn.functional as F

    x = a["x"]
    mode = str(_scalar(a.get("mode", "constant")))
    pads = _torch_pad(_int_list(a["pad"]))
    if mode == "constant":
        return F.pad(x, pads, value=float(_scalar(a.get("constant_val", 0.0))))
    return F.pad(x, pads, mode={"reflect": "reflect", "replicate": "replicate"}[mode])


@_op("upsample_nearest_neighbor")
def _upsample_nearest(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch.nn.functional as F

    scale = (float(_scalar(a["scale_factor_height"])), float(_scalar(a["scale_factor_width"])))
    return F.interpolate(a["x"], scale_factor=scale, mode="nearest")


# ------------------------------------------------------------------- activation quantization


def _per_axis(value: Any, x: torch.Tensor, axis: Any) -> torch.Tensor:
    tensor = _tensor(value, x)
    if tensor.ndim == 0 or tensor.numel() == 1:
        return tensor.reshape(())
    shape = [1] * x.ndim
    shape[int(_scalar(axis)) % x.ndim] = -1
    return tensor.reshape(shape)


@_op("quantize")
def _quantize(a: dict[str, Any], batch: int) -> torch.Tensor:
    """clip(round(input / scale) + zero_point) into int8 / uint8 (MIL ``quantize``)."""
    x = a["x"]
    dtype = str(_scalar(a["output_dtype"]))
    low, high = (-128, 127) if dtype == "int8" else (0, 255)
    scale = _per_axis(a["scale"], x, a.get("axis"))
    zero = a.get("zero_point")
    q = (x / scale).round()
    if zero is not None:
        q = q + _per_axis(zero, x, a.get("axis"))
    return q.clamp(low, high)


@_op("dequantize")
def _dequantize(a: dict[str, Any], batch: int) -> torch.Tensor:
    """(input − zero_point) × scale (MIL ``dequantize``)."""
    x = a["x"]
    zero = a.get("zero_point")
    if zero is not None:
        x = x - _per_axis(zero, x, a.get("axis"))
    return x * _per_axis(a["scale"], x, a.get("axis"))


# --------------------------------------------------------------------------------- program

CONSTANT_OPS = ("const",)


# Ops whose outputs are fp16 values whenever their inputs are: they select, move or compare
# values (max, clamp to fp16 bounds) without arithmetic, so rounding their result again is an
# exact no-op - and skipping it saves a quarter of the executor's time on MobileNets.
EXACT_IN_FP16 = frozenset(
    {
        "relu", "thresholded_relu", "max_pool", "reduce_max", "reduce_min", "maximum",
        "minimum", "reshape", "transpose", "squeeze", "expand_dims", "concat", "split",
        "tile", "upsample_nearest_neighbor",
    }
)  # fmt: skip


def _is_constant(op: Any) -> bool:
    return op.op_type in CONSTANT_OPS or op.op_type.startswith("constexpr_")


def unsupported_ops(program: Any) -> list[str]:
    """Op types of the program's main function this executor cannot run (sorted)."""
    from .weights_roundtrip import _walk

    found = set()
    for op in _walk(program.functions["main"]):
        if op.blocks:
            found.add(f"{op.op_type} (control flow)")
        elif not _is_constant(op) and op.op_type not in OPS:
            found.add(op.op_type)
    return sorted(found)


def batch_hazard(function: Any) -> str | None:
    """Why running this batch-1 program on N samples at once could mix samples, or None.

    Batching along axis 0 is exact only while every computed tensor keeps the batch as its
    leading axis and no op reaches across it. Programs that fold the batch into another axis
    (MobileViT's unfolding reshapes) or transpose it away are run one sample at a time.
    """
    for op in function.operations:
        if _is_constant(op):
            continue
        for out in op.outputs:
            shape = getattr(out, "shape", ())
            if len(shape) >= 1 and shape[0] != 1:
                return f"{op.op_type} {out.name!r} has shape {tuple(shape)} (batch axis folded)"
        inputs = op.inputs
        rank = len(getattr(inputs.get("x"), "shape", ()) or ())
        if op.op_type == "transpose" and _int_list(inputs["perm"].val)[0] != 0:
            return f"transpose {op.outputs[0].name!r} moves the batch axis"
        if op.op_type == "tile" and _int_list(inputs["reps"].val)[0] != 1:
            return f"tile {op.outputs[0].name!r} repeats along the batch axis"
        for key in ("axis", "axes"):
            var = inputs.get(key)
            if var is None:
                if key == "axes" and (op.op_type.startswith("reduce_") or op.op_type == "squeeze"):
                    return f"{op.op_type} {op.outputs[0].name!r} acts on every axis"
                continue
            axes = _int_list(var.val) if var.val is not None else [0]
            if rank and any(a % rank == 0 for a in axes):
                return f"{op.op_type} {op.outputs[0].name!r} acts on the batch axis"
    return None


class ProgramExecutor:
    """Callable: float32 batch (N, *input shape[1:]) → the program's first output, batched.

    Constants and decompressed weights are prepared once; calls run only the compute ops.
    Programs whose ops reach across the batch axis run sample by sample (``batch_hazard``).
    """

    def __init__(self, package: Path, device: str = "cpu") -> None:
        import torch
        from coremltools.converters.mil.mil import types

        from .weights_roundtrip import _Materialiser, load_program

        self.package = Path(package)
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested, but torch sees no CUDA device")
        self.device = torch.device(device)
        program = load_program(self.package)
        missing = unsupported_ops(program)
        if missing:
            raise UnsupportedOpError(
                f"{self.package}: the mil-torch executor does not implement op(s) "
                f"{', '.join(missing)}; nothing was run"
            )
        function = program.functions["main"]
        if len(function.inputs) != 1:
            raise UnsupportedOpError(
                f"{self.package}: programs with {len(function.inputs)} inputs are not supported"
            )
        self.input_name, input_var = next(iter(function.inputs.items()))
        self.input_shape = tuple(int(d) for d in input_var.shape)
        self.output_name = function.outputs[0].name
        self.batch_hazard = batch_hazard(function)
        if self.batch_hazard:
            log.info("%s: running one sample at a time: %s", self.package, self.batch_hazard)
        materialiser = _Materialiser(self.package)
        self._steps: list[tuple[str, dict[str, Any], list[str], list[bool]]] = []
        for op in function.operations:
            if _is_constant(op):
                continue
            arguments: dict[str, Any] = {"__op__": op.op_type}
            for name, var in op.inputs.items():
                arguments[name] = self._argument(var, materialiser)
            outputs = [out.name for out in op.outputs]
            # Rounding only where the op can leave the fp16 grid (see EXACT_IN_FP16).
            fp16 = [
                out.dtype == types.fp16 and op.op_type not in EXACT_IN_FP16 for out in op.outputs
            ]
            self._steps.append((op.op_type, arguments, outputs, fp16))

    def _argument(self, var: Any, materialiser: Any) -> Any:
        """A variable's name (computed at run time), or its constant value, prepared once."""
        import torch

        if isinstance(var, (list, tuple)):
            return [self._argument(v, materialiser) for v in var]
        if var.op is not None and not _is_constant(var.op):
            return _Ref(var.name)
        if var.op is None and var.val is None:
            return _Ref(var.name)  # the function input
        value = var.val if var.val is not None else materialiser.value(var)
        array = np.asarray(value)
        if array.dtype.kind == "f" and array.ndim >= 1:
            return torch.from_numpy(array.astype(np.float32)).to(self.device)
        return array

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        expected = self.input_shape[1:]
        if tuple(batch.shape[1:]) != expected:
            raise ValueError(
                f"{self.package}: input {self.input_name!r} expects (N, {expected}), "
                f"got {tuple(batch.shape)}"
            )
        batch = batch.to(self.device, torch.float32)
        if self.batch_hazard and batch.shape[0] > 1:
            return torch.cat([self._run(sample[None]) for sample in batch])
        return self._run(batch)

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        n = int(batch.shape[0])
        env: dict[str, Any] = {self.input_name: batch}
        with torch.no_grad():
            for op_type, arguments, outputs, fp16 in self._steps:
                resolved = {k: _resolve(v, env) for k, v in arguments.items()}
                # quantize/dequantize name their tensor "input"; every op function reads "x".
                if "input" in resolved and "x" not in resolved:
                    resolved["x"] = resolved["input"]
                result = OPS[op_type](resolved, n)
                results = result if isinstance(result, tuple) else (result,)
                for name, value, is_fp16 in zip(outputs, results, fp16, strict=True):
                    env[name] = _round_fp16(value) if is_fp16 else value
        return env[self.output_name].float().cpu()


class _Ref:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def _resolve(value: Any, env: dict[str, Any]) -> Any:
    if isinstance(value, _Ref):
        return env[value.name]
    if isinstance(value, list):
        return [_resolve(v, env) for v in value]
    return value


def _round_fp16(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor) and value.dtype == torch.float32:
        return value.to(torch.float16).to(torch.float32)
    return value
