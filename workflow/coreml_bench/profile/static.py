"""Static figures of a package: size on disk, stored parameters, MACs of one image."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import directory_bytes
from ..mlpackage.files import weight_file_bytes

if TYPE_CHECKING:
    import torch

    from ..mlpackage.program import PackageWeight


def static_figures(
    package: Path, model: Any, shape: tuple[int, ...], stored: list[PackageWeight]
) -> dict[str, Any]:
    """Size on disk, parameter count (as ``stored`` in the package) and MACs of one image.

    MACs come from the architecture's conv/linear shapes (``model``), not from weight values.
    """
    import torch

    parameters = sum(w.weight.size + (w.bias.size if w.bias is not None else 0) for w in stored)
    macs = 0

    def count(module: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, torch.nn.Conv2d):
            per_output = module.in_channels // module.groups
            per_output *= module.kernel_size[0] * module.kernel_size[1]
            macs += output.numel() * per_output
        elif isinstance(module, torch.nn.Linear):
            macs += output.numel() * module.in_features

    hooks = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    with torch.no_grad():
        model(torch.rand(*shape))
    for hook in hooks:
        hook.remove()
    return {
        "package_bytes": directory_bytes(package),
        "weight_bytes": weight_file_bytes(package),
        "parameters": int(parameters),
        "macs": int(macs),
    }
