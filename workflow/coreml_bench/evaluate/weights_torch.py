"""Package weights in the torch graph: the ``weights-torch`` evaluator's mapping.

The converter folds each BatchNorm into the conv before it and names the folded weights
anonymously, so names cannot be matched: BatchNorm is folded on the torch side as well and
the program's conv/linear ops are paired with the torch calls **by order**, checking op kind
and every shape (see ``mlpackage.program`` for why order is safe).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..mlpackage.program import PackageWeight, WeightMappingError, read_package_weights
from ..models import weight_module_types

if TYPE_CHECKING:
    import torch


def _trace(model: torch.nn.Module) -> Any:
    """fx graph in which every conv/linear/BatchNorm (subclasses included) is one call_module.

    The default fx tracer treats only modules defined inside torch.nn as leaves, so it would
    trace *into* EfficientNet's Conv2dStaticSamePadding and leave a bare F.conv2d behind.
    """
    import torch
    from torch.fx import Tracer

    leaves = (*weight_module_types(), torch.nn.modules.batchnorm._BatchNorm)

    class _LeafTracer(Tracer):
        def is_leaf_module(self, module: torch.nn.Module, qualified_name: str) -> bool:
            return isinstance(module, leaves) or super().is_leaf_module(module, qualified_name)

    try:
        return _LeafTracer().trace(model)
    except Exception as error:  # fx raises many types for untraceable Python control flow
        raise WeightMappingError(
            f"{type(model).__name__} cannot be traced by torch.fx, which maps weights by "
            f"execution order: {error}"
        ) from error


def _call_counts(graph: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            counts[node.target] = counts.get(node.target, 0) + 1
    return counts


def fuse_batchnorm(model: torch.nn.Module, input_size: int | None = None) -> torch.nn.Module:
    """A copy in eval mode where each BatchNorm fed only by a conv is folded into that conv.

    The copy keeps the model's own classes and ``forward`` (only the conv is replaced by its
    folded twin and the BatchNorm by ``Identity``), so custom modules such as
    EfficientNet-Lite's Conv2dStaticSamePadding keep their padding. ``input_size`` is accepted
    for callers' convenience; the fx analysis needs no example input.
    """
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    del input_size
    fused = copy.deepcopy(model).eval()
    graph = _trace(fused)
    calls = _call_counts(graph)
    for node in graph.nodes:
        if node.op != "call_module":
            continue
        bn = fused.get_submodule(node.target)
        if not isinstance(bn, torch.nn.modules.batchnorm._BatchNorm) or len(node.args) != 1:
            continue
        producer = node.args[0]
        if not isinstance(producer, torch.fx.Node) or producer.op != "call_module":
            continue
        conv = fused.get_submodule(producer.target)
        # Fold only what coremltools folds: the conv's output goes nowhere else, and neither
        # module is reused elsewhere (a shared module cannot carry one fold per call).
        if (
            not isinstance(conv, torch.nn.modules.conv._ConvNd)
            or len(producer.users) != 1
            or calls[producer.target] != 1
            or calls[node.target] != 1
        ):
            continue
        merged = fuse_conv_bn_eval(conv, bn, transpose=conv.transposed)
        fused.set_submodule(producer.target, merged)
        fused.set_submodule(node.target, torch.nn.Identity())
    return fused


def weight_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) per conv/linear call in fx graph order — the order of the program's ops.

    A module called twice appears twice, as the program holds one op per call.
    """
    kinds = weight_module_types()
    order = []
    for node in _trace(model).nodes:
        if node.op == "call_module":
            module = model.get_submodule(node.target)
            if isinstance(module, kinds):
                order.append((node.target, module))
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
    model: torch.nn.Module,
    package: Path,
    input_size: int | None = None,
    stored: list[PackageWeight] | None = None,
) -> torch.nn.Module:
    """A BatchNorm-folded eval copy of ``model`` carrying the package's conv/linear weights.

    ``stored`` is ``read_package_weights(package)`` where the caller has it already. The
    original model is untouched. A bias the program stores is always set (a conv without
    bias before a BatchNorm gains the folded one); a program op without bias means zero bias.
    """
    import torch

    package = Path(package)
    fused = fuse_batchnorm(model, input_size)
    modules = weight_modules(fused)
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
