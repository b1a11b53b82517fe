"""Package weights in the torch graph: the ``weights-torch`` evaluator's mapping.

The converter folds each BatchNorm into the conv before it and names the folded weights
anonymously, so names cannot be matched: BatchNorm is folded on the torch side as well and
the program's conv/linear ops are paired with the torch calls **by order**, checking op kind
and every shape (see ``mlpackage.program`` for why order is safe). The calls are read from a
torch.fx graph, or, for models whose Python control flow fx cannot trace, from torch.export's
graph on the program's own input shape (the converter's own tracer).
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..mlpackage.files import input_description
from ..mlpackage.program import PackageWeight, WeightMappingError, read_package_weights
from ..models import weight_module_types

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class _Call:
    """One call of a conv/linear/BatchNorm module, in execution order."""

    target: str  # the module's qualified name
    producer: int | None  # index of the module call whose output is this call's sole input
    users: int  # how many graph nodes read this call's output


def _leaf_types() -> tuple[type, ...]:
    import torch

    return (*weight_module_types(), torch.nn.modules.batchnorm._BatchNorm)


def _fx_calls(model: torch.nn.Module) -> list[_Call]:
    """Calls in a torch.fx graph in which every conv/linear/BatchNorm is one call_module.

    The default fx tracer treats only modules defined inside torch.nn as leaves, so it would
    trace *into* EfficientNet's Conv2dStaticSamePadding and leave a bare F.conv2d behind.
    """
    from torch.fx import Tracer

    leaves = _leaf_types()

    class _LeafTracer(Tracer):
        def is_leaf_module(self, module: torch.nn.Module, qualified_name: str) -> bool:
            return isinstance(module, leaves) or super().is_leaf_module(module, qualified_name)

    graph = _LeafTracer().trace(model)
    index: dict[Any, int] = {}
    calls: list[_Call] = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(model.get_submodule(node.target), leaves):
            continue
        source = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        index[node] = len(calls)
        calls.append(_Call(node.target, index.get(source), len(node.users)))
    return calls


# The ATen ops torch.export records for conv/linear/BatchNorm modules (no decompositions).
_EXPORTED_OPS = {
    "aten::conv1d",
    "aten::conv2d",
    "aten::conv3d",
    "aten::conv_transpose1d",
    "aten::conv_transpose2d",
    "aten::conv_transpose3d",
    "aten::convolution",
    "aten::linear",
    "aten::batch_norm",
}


def _export_calls(model: torch.nn.Module, example_shape: Sequence[int]) -> list[_Call]:
    """The same calls read from ``torch.export`` — the converter's own tracer — for models
    whose Python control flow on shapes torch.fx cannot trace (e.g. timm's MobileViTv2).

    Each conv/linear/batch_norm ATen call is attributed to the innermost module that made it
    (``nn_module_stack``); a functional call inside any other module is not a module call,
    as in the fx graph.
    """
    import torch

    leaves = _leaf_types()
    with torch.no_grad():
        exported = torch.export.export(model, (torch.rand(*example_shape),))
    index: dict[Any, int] = {}
    calls: list[_Call] = []
    for node in exported.graph.nodes:
        if node.op != "call_function" or not hasattr(node.target, "name"):
            continue
        if node.target.name() not in _EXPORTED_OPS or not node.meta.get("nn_module_stack"):
            continue
        target = list(node.meta["nn_module_stack"].values())[-1][0]
        if not isinstance(model.get_submodule(target), leaves):
            continue
        index[node] = len(calls)
        calls.append(_Call(target, index.get(node.args[0]), len(node.users)))
    return calls


def _module_calls(model: torch.nn.Module, example_shape: Sequence[int] | None) -> list[_Call]:
    """fx where it traces (no example input, fast); else torch.export on ``example_shape``."""
    try:
        return _fx_calls(model)
    except Exception as fx_error:  # fx raises many types for untraceable Python control flow
        name = type(model).__name__
        if example_shape is None:
            raise WeightMappingError(
                f"{name} cannot be traced by torch.fx ({fx_error}), and no example input "
                "shape was given to trace it with torch.export instead"
            ) from fx_error
        try:
            return _export_calls(model, example_shape)
        except Exception as export_error:
            raise WeightMappingError(
                f"{name} cannot be traced by torch.fx ({fx_error}) nor by torch.export on an "
                f"input of shape {tuple(example_shape)} ({export_error}), so the order of "
                "its conv/linear calls is unknown"
            ) from export_error


def _after_fold(name: str, bn: torch.nn.Module) -> torch.nn.Module:
    """What stands where a folded BatchNorm was: nothing, or what its forward adds after the
    normalization (timm's BatchNormAct2d: dropout and activation, which the converter keeps
    as ops after the folded conv)."""
    import torch

    if type(bn).forward is torch.nn.modules.batchnorm._BatchNorm.forward:
        return torch.nn.Identity()
    try:
        from timm.layers.norm_act import BatchNormAct2d
    except ImportError:  # timm is optional for this mapping
        BatchNormAct2d = None  # noqa: N806
    if BatchNormAct2d is not None and type(bn).forward is BatchNormAct2d.forward:
        return torch.nn.Sequential(bn.drop, bn.act)
    raise WeightMappingError(
        f"BatchNorm module {name} ({type(bn).__qualname__}) has its own forward, so what "
        "remains once it is folded into the conv before it is unknown"
    )


def fuse_batchnorm(
    model: torch.nn.Module, example_shape: Sequence[int] | None = None
) -> torch.nn.Module:
    """A copy in eval mode where each BatchNorm fed only by a conv is folded into that conv.

    The copy keeps the model's own classes and ``forward`` (only the conv is replaced by its
    folded twin and the BatchNorm by what its forward does after normalizing, usually
    nothing), so custom modules such as EfficientNet-Lite's Conv2dStaticSamePadding keep their
    padding. ``example_shape`` (e.g. ``(1, 3, 256, 256)``) is needed only for models torch.fx
    cannot trace.
    """
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    calls = _module_calls(fused, example_shape)
    counts = Counter(call.target for call in calls)
    for call in calls:
        bn = fused.get_submodule(call.target)
        if not isinstance(bn, torch.nn.modules.batchnorm._BatchNorm) or call.producer is None:
            continue
        producer = calls[call.producer]
        conv = fused.get_submodule(producer.target)
        # Fold only what coremltools folds: the conv's output goes nowhere else, and neither
        # module is reused elsewhere (a shared module cannot carry one fold per call).
        if (
            not isinstance(conv, torch.nn.modules.conv._ConvNd)
            or producer.users != 1
            or counts[producer.target] != 1
            or counts[call.target] != 1
        ):
            continue
        after = _after_fold(call.target, bn)
        merged = fuse_conv_bn_eval(conv, bn, transpose=conv.transposed)
        fused.set_submodule(producer.target, merged)
        fused.set_submodule(call.target, after)
    return fused


def weight_modules(
    model: torch.nn.Module, example_shape: Sequence[int] | None = None
) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) per conv/linear call in execution order — the order of the program's ops.

    A module called twice appears twice, as the program holds one op per call.
    """
    kinds = weight_module_types()
    order = []
    for call in _module_calls(model, example_shape):
        module = model.get_submodule(call.target)
        if isinstance(module, kinds):
            order.append((call.target, module))
    return order


def _op_type_for(module: torch.nn.Module) -> str:
    import torch

    if isinstance(module, torch.nn.Linear):
        return "linear"
    return "conv_transpose" if module.transposed else "conv"


def _describe(index: int, name: str, module: Any, item: PackageWeight) -> str:
    return (
        f"weight {index}: torch module {name} ({type(module).__name__}, weight "
        f"{tuple(module.weight.shape)}) vs program op {item.op_name} ({item.op_type}, weight "
        f"{item.weight.shape})"
    )


def load_package_weights(
    model: torch.nn.Module, package: Path, *, stored: list[PackageWeight] | None = None
) -> torch.nn.Module:
    """A BatchNorm-folded eval copy of ``model`` carrying the package's conv/linear weights.

    ``stored`` is ``read_package_weights(package)`` where the caller has it already. The
    original model is untouched. A bias the program stores is always set (a conv without
    bias before a BatchNorm gains the folded one); a program op without bias means zero bias.
    """
    import torch

    package = Path(package)
    # The program's own input shape, for models only torch.export can trace.
    example_shape = input_description(package).get("shape")
    fused = fuse_batchnorm(model, example_shape)
    modules = weight_modules(fused, example_shape)
    if stored is None:
        stored = read_package_weights(package)
    assigned: dict[int, PackageWeight] = {}
    for index, ((name, module), item) in enumerate(zip(modules, stored, strict=False)):
        where = _describe(index, name, module, item)
        if _op_type_for(module) != item.op_type:
            raise WeightMappingError(f"{package}: op kind differs at {where}")
        if tuple(module.weight.shape) != item.weight.shape:
            raise WeightMappingError(f"{package}: weight shape differs at {where}")
        expected_bias = (getattr(module, "out_features", None) or module.out_channels,)
        if item.bias is not None and item.bias.shape != expected_bias:
            raise WeightMappingError(
                f"{package}: bias shape {item.bias.shape} != {expected_bias} at {where}"
            )
        previous = assigned.get(id(module))
        if previous is not None and not _same(previous, item):
            raise WeightMappingError(
                f"{package}: module {name} is called twice but program ops "
                f"{previous.op_name} and {item.op_name} store different weights"
            )
        assigned[id(module)] = item
        # Fresh Parameters: the folded conv's tensors are not shared with the original model.
        module.weight = torch.nn.Parameter(torch.from_numpy(item.weight.copy()))
        module.bias = (
            None if item.bias is None else torch.nn.Parameter(torch.from_numpy(item.bias.copy()))
        )
    if len(modules) != len(stored):
        index = min(len(modules), len(stored))
        extra = (
            f"first unmatched torch module: {modules[index][0]} "
            f"(weight {tuple(modules[index][1].weight.shape)})"
            if len(modules) > len(stored)
            else f"first unmatched program op: {stored[index].op_name} "
            f"({stored[index].op_type}, weight {stored[index].weight.shape})"
        )
        raise WeightMappingError(
            f"{package}: the program has {len(stored)} conv/linear ops but the torch model "
            f"calls {len(modules)} conv/linear modules; all {index} in common agree in shape; "
            f"at weight {index}, {extra}"
        )
    return fused.eval()


def _same(a: PackageWeight, b: PackageWeight) -> bool:
    same_bias = (a.bias is None and b.bias is None) or (
        a.bias is not None and b.bias is not None and np.array_equal(a.bias, b.bias)
    )
    return same_bias and np.array_equal(a.weight, b.weight)
