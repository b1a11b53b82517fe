"""Linear algebra: conv, conv_transpose, linear and matmul."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import (
    UnsupportedOpError,
    as_tensor,
    int_list,
    register_op,
    scalar,
    spatial_padding,
    torch_pad,
)

if TYPE_CHECKING:
    import torch


@register_op("conv")
def _conv(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch.nn.functional as F

    x, weight = a["x"], as_tensor(a["weight"], a["x"])
    n = weight.ndim - 2
    pads = spatial_padding(a, x, list(weight.shape[2:]))
    begin, end = pads[0::2], pads[1::2]
    padding = begin
    if begin != end:  # torch pads symmetrically; pad the input itself otherwise
        x, padding = F.pad(x, torch_pad(pads)), [0] * n
    conv = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
    bias = a.get("bias")
    # Padding inside the conv call, not by F.pad: oneDNN then picks kernels ~3x faster.
    return conv(
        x,
        weight,
        None if bias is None else as_tensor(bias, x),
        stride=int_list(a.get("strides", [1] * n)),
        padding=padding,
        dilation=int_list(a.get("dilations", [1] * n)),
        groups=int(scalar(a.get("groups", 1))),
    )


@register_op("conv_transpose")
def _conv_transpose(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch.nn.functional as F

    x, weight = a["x"], as_tensor(a["weight"], a["x"])
    n = weight.ndim - 2
    if str(scalar(a.get("pad_type", "valid"))) not in ("valid", "custom"):
        raise UnsupportedOpError("conv_transpose with pad_type same is not supported")
    pads = int_list(a.get("pad", [0] * (2 * n)))
    if any(pads[0::2][i] != pads[1::2][i] for i in range(n)):
        raise UnsupportedOpError(f"conv_transpose with asymmetric padding {pads}")
    conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[n - 1]
    bias = a.get("bias")
    return conv(
        x,
        weight,
        None if bias is None else as_tensor(bias, x),
        stride=int_list(a.get("strides", [1] * n)),
        padding=pads[0::2],
        dilation=int_list(a.get("dilations", [1] * n)),
        groups=int(scalar(a.get("groups", 1))),
    )


@register_op("linear")
def _linear(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch.nn.functional as F

    x = a["x"]
    bias = a.get("bias")
    return F.linear(x, as_tensor(a["weight"], x), None if bias is None else as_tensor(bias, x))


@register_op("matmul")
def _matmul(a: dict[str, Any], batch: int) -> torch.Tensor:
    import torch

    x, y = a["x"], a["y"]
    like = x if isinstance(x, torch.Tensor) else y
    x, y = as_tensor(x, like), as_tensor(y, like)
    if bool(scalar(a.get("transpose_x", False))):
        x = x.transpose(-1, -2)
    if bool(scalar(a.get("transpose_y", False))):
        y = y.transpose(-1, -2)
    return torch.matmul(x, y)
