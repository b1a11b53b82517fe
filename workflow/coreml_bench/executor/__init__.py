"""The Core ML program executor: an ML program compiled once into a torch graph.

``compiler`` reads a package's MIL program (coremltools) into a ``plan.Plan`` - checked
whole, weights decompressed - cached beside the package; ``graph`` turns a plan into a
``torch.fx`` GraphModule; ``runtime`` runs it with the program's own named inputs, outputs
and shapes (``CompiledProgram``) or as the evaluation's batch predictor
(``ProgramExecutor``); ``ops`` holds the op table, one module per op family. Loading a cached
plan imports neither coremltools nor the program.
"""

from .ops.registry import UnsupportedOpError
from .plan import Plan, ShapeError
from .runtime import CompiledProgram, ProgramExecutor, load_or_compile, plan_folder

__all__ = [
    "CompiledProgram",
    "Plan",
    "ProgramExecutor",
    "ShapeError",
    "UnsupportedOpError",
    "load_or_compile",
    "plan_folder",
]
