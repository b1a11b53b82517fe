"""Read the (decompressed) weights of a Core ML ML program back into its torch architecture.

Core ML predicts only on macOS. Off Apple hardware, the honest way to measure a compressed
package is to run the architecture's torch graph with exactly the weights the package stores.
The converter folds BatchNorm into the preceding conv and names the folded weights
anonymously, so the mapping (1) folds BatchNorm the same way on the torch side, found by
dataflow during one forward pass, and (2) pairs conv/linear layers by execution order, with
every shape checked.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

WEIGHT_OPS = ("conv", "linear", "conv_transpose")


class WeightMappingError(RuntimeError):
    """The package's weights do not fit the torch architecture (count or shape)."""


@dataclass
class PackageWeight:
    """One weight-carrying op of the program, in program order."""

    op_name: str
    op_type: str
    weight: np.ndarray
    bias: np.ndarray | None
    weight_encoding: str  # "const" or the constexpr op type that stores it


def _walk(block: Any) -> Iterator[Any]:
    for op in block.operations:
        yield op
        for nested in op.blocks:
            yield from _walk(nested)


def load_program(package: Path) -> Any:
    """The MIL program of a package, rebuilt from its spec and weight file (Linux-safe)."""
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    from .mlpackage import open_package

    mlmodel = open_package(package, skip_model_load=True)
    spec = mlmodel.get_spec()
    return milproto_load(
        spec,
        specification_version=spec.specificationVersion,
        file_weights_dir=mlmodel.weights_dir,
    )


def _value(var: Any) -> tuple[np.ndarray, str]:
    op = var.op
    if op is None or op.op_type == "const":
        return np.asarray(var.val, dtype=np.float32), "const"
    if op.op_type.startswith("constexpr_"):
        # materialized_val_inference follows chains (e.g. LUT whose indices are sparse).
        value = op.materialized_val_inference()
        if isinstance(value, (list, tuple)):
            value = value[list(op.outputs).index(var)]
        return np.asarray(value, dtype=np.float32), op.op_type
    raise WeightMappingError(f"weight {var.name} is computed by a {op.op_type} op, not stored")


def read_package_weights(package: Path) -> list[PackageWeight]:
    """conv/linear weights and biases in program order, decompressed to float32."""
    program = load_program(package)
    ops = list(_walk(program.functions["main"]))
    for op in ops:
        if not op.op_type.startswith("constexpr_"):
            continue
        for out in op.outputs:
            for child in out.child_ops:
                as_weight = child.op_type in WEIGHT_OPS and out in (
                    child.inputs.get("weight"),
                    child.inputs.get("bias"),
                )
                if not (as_weight or child.op_type.startswith("constexpr_")):
                    raise WeightMappingError(
                        f"{package}: compressed constant {out.name} ({op.op_type}) feeds "
                        f"{child.op_type} op {child.name}, which the weights path cannot map"
                    )
    weights = []
    for op in ops:
        if op.op_type not in WEIGHT_OPS:
            continue
        weight, encoding = _value(op.inputs["weight"])
        bias_var = op.inputs.get("bias")
        bias = _value(bias_var)[0] if bias_var is not None else None
        weights.append(PackageWeight(op.name, op.op_type, weight, bias, encoding))
    return weights


def _trace_calls(model: torch.nn.Module, input_size: int) -> list[tuple[str, Any, Any, Any]]:
    """(name, module, input tensor, output tensor) per conv/linear/batchnorm call, in order."""
    import torch

    kinds = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear, torch.nn.BatchNorm2d,
             torch.nn.BatchNorm1d)  # fmt: skip
    calls: list[tuple[str, Any, Any, Any]] = []
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, kinds):

            def hook(mod: Any, inputs: Any, output: Any, name: str = name) -> None:
                calls.append((name, mod, inputs[0], output))

            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(torch.rand(1, 3, input_size, input_size))
    finally:
        for handle in hooks:
            handle.remove()
    return calls


def fuse_batchnorm(model: torch.nn.Module, input_size: int = 224) -> torch.nn.Module:
    """A copy in eval mode where each BatchNorm fed directly by a conv/linear is folded into it.

    Pairs are found by dataflow (the BatchNorm's input *is* the conv's output tensor), which
    works for any module structure, including subclasses such as EfficientNet's
    Conv2dStaticSamePadding.
    """
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    fused = copy.deepcopy(model).eval()
    calls = _trace_calls(fused, input_size)
    producer = {
        id(out): name
        for name, mod, _inp, out in calls
        if not isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)
    }
    for name, mod, inp, _out in calls:
        if not isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) or id(inp) not in producer:
            continue
        layer_name = producer[id(inp)]
        layer = fused.get_submodule(layer_name)
        if isinstance(layer, torch.nn.Linear):
            merged = fuse_linear_bn_eval(layer, mod)
        elif isinstance(layer, torch.nn.ConvTranspose2d):
            merged = fuse_conv_bn_eval(layer, mod, transpose=True)
        else:
            merged = fuse_conv_bn_eval(layer, mod)
        fused.set_submodule(layer_name, merged)
        fused.set_submodule(name, torch.nn.Identity())
    return fused


def weight_modules(model: torch.nn.Module, input_size: int = 224) -> list[tuple[str, Any]]:
    """conv/linear modules in execution order: the order the program lists its ops in."""
    import torch

    order = []
    for name, mod, _inp, _out in _trace_calls(model, input_size):
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            continue
        order.append((name, mod))
    return order


def load_package_weights(
    model: torch.nn.Module, package: Path, input_size: int = 224
) -> torch.nn.Module:
    """A BatchNorm-folded copy of ``model`` carrying the package's conv/linear weights."""
    import torch

    fused = fuse_batchnorm(model, input_size)
    modules = weight_modules(fused, input_size)
    stored = read_package_weights(package)
    if len(modules) != len(stored):
        raise WeightMappingError(
            f"{package}: the program has {len(stored)} conv/linear ops but the torch model "
            f"calls {len(modules)} conv/linear layers"
        )
    for index, ((name, module), item) in enumerate(zip(modules, stored, strict=True)):
        if tuple(module.weight.shape) != item.weight.shape:
            raise WeightMappingError(
                f"{package}: layer {index} ({name}) has weight shape "
                f"{tuple(module.weight.shape)} but program op {item.op_name} ({item.op_type}) "
                f"stores {item.weight.shape}"
            )
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(item.weight))
            if item.bias is not None:
                if module.bias is None or tuple(module.bias.shape) != item.bias.shape:
                    module.bias = torch.nn.Parameter(torch.from_numpy(item.bias.copy()))
                else:
                    module.bias.copy_(torch.from_numpy(item.bias))
            elif module.bias is not None:
                module.bias.zero_()
    return fused
