"""An ``.mlpackage`` as a torch program anywhere torch runs: ``coreml-bench export``.

* ``plan``: the compiled plan (``plan.json`` + ``constants.pt``), what the workflow caches
  beside each package; ``CompiledProgram(Plan.load(folder))`` runs it without coremltools.
* ``pt2``: a ``torch.export`` program (``torch.export.load(path).module()(*inputs)``): needs
  torch only, not this project. Exported at the program's declared input shapes.
* ``onnx``: the same graph through ``torch.onnx.export`` (dynamo), for ONNX runtimes.
* ``code``: the GraphModule's Python source, one line per MIL op, to read what runs.

Every format computes what the executor computes: fp16 activations rounded per op,
decompressed weights. A ``.pt2`` or ``.onnx`` file is checked against the executor on the
example inputs before it is kept.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..io import atomic_path, write_text_atomic
from .graph import build_graph_module
from .runtime import CompiledProgram, plan_folder

log = logging.getLogger(__name__)

FORMATS = ("plan", "pt2", "onnx", "code")
SUFFIXES = {"plan": ".torch", "pt2": ".pt2", "onnx": ".onnx", "code": ".py"}


def default_output(package: Path, to: str) -> Path:
    package = Path(package)
    if to == "plan":
        return plan_folder(package)
    return package.with_name(package.stem + SUFFIXES[to])


def export_package(package: Path, to: str, output: Path | None = None) -> Path:
    """Write ``package``'s program in format ``to``; returns where."""
    import torch

    if to not in FORMATS:
        raise ValueError(f"export format {to!r}: choose one of {', '.join(FORMATS)}")
    package = Path(package)
    output = Path(output) if output else default_output(package, to)
    if to == "plan":
        from .runtime import compile_to

        compile_to(package, output)
        CompiledProgram.from_package(package)  # raises a cached refusal with its reasons
        return output
    program = CompiledProgram.from_package(package)
    # Portable ops only: no prepacked oneDNN weights (``fast``) in an exported graph.
    module = build_graph_module(program.plan, fast=False).eval()
    if to == "code":
        write_text_atomic(output, f"# {package}: the executor's graph (torch.fx)\n{module.code}")
        return output
    if program.states or any(step.blocks for step in program.plan.steps):
        # torch.export traces one path: a Python branch or loop would be frozen at the
        # example's, and the state buffers are extra inputs the exported file cannot name.
        raise ValueError(
            f"{package}: a program with state or control flow (cond, while_loop) cannot be "
            f"exported to {to}; export it as 'plan' or 'code'"
        )
    inputs = program.example_inputs()
    expected = list(program.run(*inputs).values())
    with atomic_path(output, suffix=SUFFIXES[to]) as staging:
        if to == "pt2":
            exported = torch.export.export(module, inputs)
            torch.export.save(exported, str(staging))
            got = torch.export.load(str(staging)).module()(*inputs)
        else:
            torch.onnx.export(
                module,
                inputs,
                str(staging),
                dynamo=True,
                input_names=[i.name for i in program.inputs],
                output_names=[o.name for o in program.outputs],
            )
            got = _run_onnx(staging, program, inputs)
        _check_same(expected, list(got), to)
    return output


def _run_onnx(path: Path, program: CompiledProgram, inputs: tuple) -> list:
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: t.cpu().numpy() for i, t in zip(program.inputs, inputs, strict=True)}
    return [torch.from_numpy(v) for v in session.run(None, feeds)]


def _check_same(expected: list, got: list, to: str) -> None:
    """The exported program must compute what the executor computes (fp16 rounding kept:
    one fp16 step of the output's scale at most, for a reordered float32 sum)."""
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        have = have.to(want.device).reshape(want.shape).to(want.dtype)
        scale = float(want.abs().max()) if want.is_floating_point() and want.numel() else 0.0
        error = float((have.float() - want.float()).abs().max()) if want.numel() else 0.0
        if error > 2.0**-10 * max(scale, 1e-6):
            raise RuntimeError(
                f"export to {to}: output {index} differs from the executor's by {error:.3g} "
                f"(scale {scale:.3g}); not kept"
            )
