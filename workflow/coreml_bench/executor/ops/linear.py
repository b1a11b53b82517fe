"""Linear algebra: conv, conv_transpose, linear, matmul, einsum (``conv.py``, ``linear.py``).

int32 operands (linear, matmul) are multiplied exactly in int64 on the CPU (float64 on other
devices, exact while sums stay below 2**53) and wrap to int32 as MIL's int32 arithmetic does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import (
    BuildContext,
    Computed,
    OpView,
    all_checks,
    as_tensor,
    ints,
    number,
    one_of,
    register_op,
    spatial_padding,
    torch_pad,
)

if TYPE_CHECKING:
    import torch

_PAD_TYPES = ("valid", "same", "same_lower", "custom")


def _float(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_floating_point() else x.float()


def _is_int(dtype: str) -> bool:
    return dtype.startswith(("int", "uint"))


def _weights_rows(view: OpView) -> str | None:
    """Conv-like ops treat axis 0 as the batch, provided the weights are not per-row."""
    for key in ("weight", "bias"):
        if view.is_row(key):
            return f"{view.op} {view.name!r}: its {key} is computed from the input"
    return None


def _conv_specialized(inputs: dict[str, Any], context: BuildContext) -> Any:
    """conv with stored float weights and fixed symmetric padding, bound once.

    On CPU (``context.fast``) 2-D convs call oneDNN directly with the weight reordered once
    into its blocked layout - aten's conv2d reorders it on every call, which at batch 1 costs
    about as much as the convolution itself (measured 2× per ResNet50 conv) - and apply a
    following relu or clip in the same kernel. Fusing is exact: rounding to fp16 commutes with
    relu and with clamping to fp16 bounds, so round(relu(conv)) is relu(round(conv)).
    """
    import torch
    import torch.nn.functional as F

    x, weight, bias = inputs["x"], inputs["weight"], inputs.get("bias")
    if not isinstance(x, Computed) or not isinstance(weight, torch.Tensor):
        return None
    if not weight.is_floating_point() or (bias is not None and not isinstance(bias, torch.Tensor)):
        return None
    pad_type = inputs.get("pad_type", "valid")
    n = weight.ndim - 2
    if pad_type not in ("valid", "custom") or not 1 <= n <= 3:
        return None
    pads = ints(inputs["pad"]) if pad_type == "custom" else [0] * (2 * n)
    if pads[0::2] != pads[1::2] or (bias is not None and bias.ndim != 1):
        return None
    stride = ints(inputs["strides"]) if inputs.get("strides") is not None else [1] * n
    dilation = ints(inputs["dilations"]) if inputs.get("dilations") is not None else [1] * n
    padding, groups = pads[0::2], int(number(inputs.get("groups", 1)))
    shape = x.shape
    if (
        context.fast
        and context.device == "cpu"
        and n == 2
        and torch.backends.mkldnn.is_available()
        and shape is not None
        and len(shape) == 4
    ):
        hint = [1 if d is None else d for d in shape]
        packed = torch.ops.mkldnn._reorder_convolution_weight(
            weight.contiguous(), padding, stride, dilation, groups, hint
        )
        attr, scalars = context.activation or ("none", [])
        pointwise = torch.ops.mkldnn._convolution_pointwise

        def conv_onednn(x: torch.Tensor, bias: Any = None) -> torch.Tensor:
            return pointwise(x, packed, bias, padding, stride, dilation, groups, attr, scalars, "")

        return conv_onednn, ("x",) if bias is None else ("x", "bias"), attr != "none"
    function = (F.conv1d, F.conv2d, F.conv3d)[n - 1]

    def conv_fixed(x: torch.Tensor, weight: torch.Tensor, bias: Any = None) -> torch.Tensor:
        return function(x, weight, bias, stride, padding, dilation, groups)

    return conv_fixed, ("x", "weight") if bias is None else ("x", "weight", "bias"), False


@register_op(
    "conv",
    rows=_weights_rows,
    check=one_of("pad_type", _PAD_TYPES, "valid"),
    specialize=_conv_specialized,
)
def conv(
    x: torch.Tensor,
    weight: Any,
    bias: Any = None,
    strides: Any = None,
    pad_type: str = "valid",
    pad: Any = None,
    dilations: Any = None,
    groups: Any = 1,
) -> torch.Tensor:
    """``same`` pads an odd total with the extra element after, ``same_lower`` before;
    ``custom`` pads [before, after] per spatial axis."""
    import torch.nn.functional as F

    weight = _float(as_tensor(weight, x))
    n = weight.ndim - 2
    strides = ints(strides) if strides is not None else [1] * n
    dilations = ints(dilations) if dilations is not None else [1] * n
    pads = spatial_padding(pad_type, pad, x, list(weight.shape[2:]), strides, dilations)
    begin, end = pads[0::2], pads[1::2]
    padding = begin
    if begin != end:  # torch pads symmetrically; pad the input itself otherwise
        x, padding = F.pad(x, torch_pad(pads)), [0] * n
    function = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
    # Padding inside the conv call, not by F.pad: oneDNN then picks kernels ~3x faster.
    return function(
        x,
        weight,
        None if bias is None else _float(as_tensor(bias, x)).reshape(-1),
        stride=strides,
        padding=padding,
        dilation=dilations,
        groups=int(number(groups)),
    )


def _conv_transpose_check(view: OpView) -> list[str]:
    # same_lower is outside conv_transpose's definition (valid, same, custom); MIL's own
    # type inference cannot even size its output.
    return one_of("pad_type", ("valid", "same", "custom"), "valid")(view)


@register_op("conv_transpose", rows=_weights_rows, check=_conv_transpose_check)
def conv_transpose(
    x: torch.Tensor,
    weight: Any,
    bias: Any = None,
    pad: Any = None,
    output_shape: Any = None,
    pad_type: str = "valid",
    strides: Any = None,
    dilations: Any = None,
    groups: Any = 1,
) -> torch.Tensor:
    """MIL ``conv_transpose``: weight (C_in, C_out / groups, *K). The full transposed output,
    (D_in - 1) * stride + (K - 1) * dilation + 1 per axis, is cropped to the output size D:
    ``custom`` crops pad[before] / pad[after]; ``same`` gives D = D_in * stride, cropping
    the total P = full - D with the smaller half before (the padding TF's ``SAME`` conv
    would use); ``output_shape`` fixes D (the crop before as above: pad[before] for custom,
    0 for valid, P // 2 for same), any part past the full output being zeros. The bias is
    added after cropping."""
    import torch.nn.functional as F

    weight = _float(as_tensor(weight, x))
    n = weight.ndim - 2
    strides = ints(strides) if strides is not None else [1] * n
    dilations = ints(dilations) if dilations is not None else [1] * n
    function = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[n - 1]
    full = function(x, weight, None, stride=strides, dilation=dilations, groups=int(number(groups)))
    sizes = list(full.shape[2:])
    custom = ints(pad) if pad_type == "custom" and pad is not None else [0] * (2 * n)
    wanted = ints(output_shape)[-n:] if output_shape is not None else None
    index: list[slice] = [slice(None), slice(None)]
    extend: list[int] = []  # zeros to append per axis (output_shape past the full output)
    for i in range(n):
        if wanted is not None:
            size = wanted[i]
        elif pad_type == "same":
            size = x.shape[2 + i] * strides[i]
        else:
            size = sizes[i] - custom[2 * i] - custom[2 * i + 1]
        # same: the smaller half of the total crop before; custom/valid: pad[before].
        before = max(sizes[i] - size, 0) // 2 if pad_type == "same" else custom[2 * i]
        stop = min(before + size, sizes[i])
        index.append(slice(before, stop))
        extend += [0, before + size - stop]
    out = full[tuple(index)]
    if any(extend):
        out = F.pad(out, torch_pad(extend))
    elif any(s != slice(0, size) for s, size in zip(index[2:], sizes, strict=True)):
        out = out.contiguous()
    if bias is not None:
        out = out + _float(as_tensor(bias, x)).reshape([1, -1] + [1] * n)
    return out


# --------------------------------------------------------------------------- linear, matmul


def _int_product(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x @ y of int tensors, wrapped to int32."""
    import torch

    if x.device.type == "cpu":
        return torch.matmul(x.long(), y.long()).to(torch.int32)
    return torch.matmul(x.double(), y.double()).long().to(torch.int32)


def _int_output_check(view: OpView) -> list[str]:
    """An int32 result from a float operand (iOS17 mixed dtypes): the rounding is undefined."""
    if not view.out_dtypes or not _is_int(view.out_dtypes[0]):
        return []
    floats = [
        key
        for key, arg in view.inputs.items()
        if not isinstance(arg, list)
        and arg.kind != "value"
        and not _is_int(arg.dtype)
        and arg.dtype != "bool"
    ]
    if floats:
        return [
            f"{view.op} {view.name!r}: an int32 result from float {', '.join(floats)} "
            "(how the product is rounded to int is not defined)"
        ]
    return []


def _linear_rows(view: OpView) -> str | None:
    if view.rank("x") < 2:
        return f"linear {view.name!r}: x of rank 1 has no batch axis"
    return None


@register_op("linear", rows=_linear_rows, check=_int_output_check)
def linear(x: torch.Tensor, weight: Any, bias: Any = None) -> torch.Tensor:
    """x @ weight.T + bias; weight (D_out, D_in)."""
    import torch.nn.functional as F

    weight = as_tensor(weight, x)
    if not x.is_floating_point():
        out = _int_product(x, weight.transpose(0, 1))
        if bias is not None:
            out = (out.long() + as_tensor(bias, x).long()).to(out.dtype)
        return out
    return F.linear(x, _float(weight), None if bias is None else _float(as_tensor(bias, x)))


def _matmul_rows(view: OpView) -> str | None:
    for key, flag in (("x", "transpose_x"), ("y", "transpose_y")):
        if not view.is_row(key):
            shape = view.shape(key)
            if len(shape) >= 3 and shape[0] != 1:
                return f"matmul {view.name!r}: constant {key!r} {shape} varies along rows"
            continue
        rank = view.rank(key)
        if rank < 2 or (rank == 2 and (key == "y" or view.literal(flag, False))):
            return f"matmul {view.name!r}: the batch axis of {key!r} (rank {rank}) is a matrix axis"
    if view.is_row("x") and view.is_row("y") and min(view.rank("x"), view.rank("y")) < 3:
        return f"matmul {view.name!r}: two computed operands of rank < 3"
    return None


@register_op("matmul", rows=_matmul_rows, check=_int_output_check)
def matmul(x: Any, y: Any, transpose_x: bool = False, transpose_y: bool = False) -> torch.Tensor:
    """NumPy matmul (rank-1 operands promoted and the inserted axis removed, batch axes
    broadcast); ``transpose_*`` swaps an operand's last two axes first. iOS17 allows x and y
    of different types when one is a constant: the result takes the other one's type."""
    import torch

    like = x if isinstance(x, torch.Tensor) else y
    x, y = as_tensor(x, like), as_tensor(y, like)
    if transpose_x and x.ndim >= 2:
        x = x.transpose(-1, -2)
    if transpose_y and y.ndim >= 2:
        y = y.transpose(-1, -2)
    if not x.is_floating_point() and not y.is_floating_point():
        return _int_product(x, y)
    return torch.matmul(_float(x), _float(y))


# --------------------------------------------------------------------------- einsum


def _einsum_pattern(equation: str) -> tuple[int, int] | None:
    """(rank, 0) when the equation is one of the two MIL supports (letters renamed freely):
    ``nchw,nwhu->nchu`` (rank 4) or ``chw,whr->chr`` (rank 3); None otherwise."""
    if "->" not in equation:
        return None
    lhs, out = equation.replace(" ", "").split("->")
    terms = lhs.split(",")
    if len(terms) != 2:
        return None
    codes: dict[str, int] = {}
    vectors = []
    for term in (*terms, out):
        vectors.append([codes.setdefault(c, len(codes)) for c in term])
    if vectors == [[0, 1, 2, 3], [0, 3, 2, 4], [0, 1, 2, 4]]:
        return 4, 0
    if vectors == [[0, 1, 2], [2, 1, 3], [0, 1, 3]]:
        return 3, 0
    return None


def _einsum_check(view: OpView) -> list[str]:
    if not view.is_literal("equation"):
        return [f"einsum {view.name!r}: equation computed at run time"]
    reasons = []
    equation = view.literal("equation")
    if _einsum_pattern(equation) is None:
        reasons.append(f"einsum {view.name!r}: equation {equation!r} is not one MIL defines")
    if view.out_dtypes and view.out_dtypes[0] not in ("fp16", "fp32"):
        reasons.append(f"einsum {view.name!r}: {view.out_dtypes[0]} operands are not supported")
    return reasons


def _einsum_rows(view: OpView) -> str | None:
    values = view.inputs.get("values")
    if not isinstance(values, list) or len(view.out_shapes[0]) != 4:
        return f"einsum {view.name!r}: its first axis is a matrix axis"
    for value in values:
        if value.kind not in ("ref", "input") and (value.shape or (0,))[0] != 1:
            return f"einsum {view.name!r}: constant operand {value.shape} varies along rows"
    return None


@register_op("einsum", rows=_einsum_rows, check=all_checks(_einsum_check))
def einsum(values: list[Any], equation: str) -> torch.Tensor:
    """out[b, c, h, u] = sum_w x[b, c, h, w] * y[b, w, h, u] (rank 4; rank 3 without b),
    axes b and h broadcast between the operands."""
    import torch

    like = next(v for v in values if isinstance(v, torch.Tensor))
    x, y = (_float(as_tensor(v, like)) for v in values)
    if x.ndim == 4:
        batch, height = max(x.shape[0], y.shape[0]), max(x.shape[2], y.shape[2])
        x = x.expand(batch, x.shape[1], height, x.shape[3])
        y = y.expand(batch, y.shape[1], height, y.shape[3])
        return torch.einsum("bchw,bwhu->bchu", x, y)
    height = max(x.shape[1], y.shape[1])
    x = x.expand(x.shape[0], height, x.shape[2])
    y = y.expand(y.shape[0], height, y.shape[2])
    return torch.einsum("chw,whu->chu", x, y)
