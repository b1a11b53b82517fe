"""The compiled program's contract: declared shapes, named inputs and outputs, flexible shapes,
stacked samples only where exact, the cache beside the package, up-front refusal, export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from coreml_bench.executor import (
    CompiledProgram,
    ProgramExecutor,
    ShapeError,
    UnsupportedOpError,
    plan_folder,
)
from coremltools.converters.mil import Builder as mb
from helpers import ROOT


def _program(build, *shapes):
    import coremltools as ct

    specs = [mb.TensorSpec(shape=s) for s in shapes]
    return mb.program(input_specs=specs, opset_version=ct.target.iOS17)(build)


def test_a_program_runs_at_its_declared_shape_and_refuses_any_other() -> None:
    def body(x):
        return mb.mul(x=x, y=np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32))

    program = CompiledProgram.from_program(_program(body, (2, 3)))
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    (out,) = program.run(x).values()
    assert torch.equal(out, x * torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    # A (4, 3) input is not two samples of a (2, 3) program: refused, not re-batched.
    with pytest.raises(ShapeError, match=r"input 'x'.*\(2, 3\).*\(4, 3\)"):
        program.run(torch.zeros(4, 3))
    with pytest.raises(ShapeError, match=r"declares shape \(2, 3\)"):
        program.rows(torch.zeros(4, 3))


def test_samples_that_a_program_mixes_run_one_at_a_time() -> None:
    # (1, 4) → (2, 2) → transpose → (1, 4): batching this along axis 0 would mix samples.
    def body(x):
        y = mb.reshape(x=x, shape=[2, 2])
        return mb.reshape(x=mb.transpose(x=y, perm=[1, 0]), shape=[1, 4])

    program = CompiledProgram.from_program(_program(body, (1, 4)))
    assert program.row_hazard and "batch axis" in program.row_hazard
    batch = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    (stacked,) = program.rows(batch).values()
    one_by_one = torch.cat([next(iter(program.run(row[None]).values())) for row in batch])
    assert torch.equal(stacked, one_by_one)
    assert stacked[0].tolist() == [0.0, 2.0, 1.0, 3.0]


def test_samples_run_at_once_where_rows_provably_stay_apart() -> None:
    weight = np.random.default_rng(0).normal(size=(8, 3, 3, 3)).astype(np.float32)

    def body(x):
        y = mb.conv(x=x, weight=weight, pad_type="same")
        y = mb.reduce_mean(x=mb.relu(x=y), axes=[2, 3], keep_dims=False)
        return mb.softmax(x=mb.reshape(x=y, shape=[1, 8]), axis=-1)

    program = CompiledProgram.from_program(_program(body, (1, 3, 6, 6)))
    assert program.row_hazard is None
    batch = torch.rand(5, 3, 6, 6)
    (stacked,) = program.rows(batch).values()
    one_by_one = torch.cat([next(iter(program.run(s[None]).values())) for s in batch])
    torch.testing.assert_close(stacked, one_by_one, rtol=1e-5, atol=1e-6)


def _rows_and_one_by_one(program: CompiledProgram, batch: torch.Tensor) -> tuple:
    (stacked,) = program.rows(batch).values()
    one_by_one = torch.cat([next(iter(program.run(s[None]).values())) for s in batch])
    return stacked, one_by_one


def test_a_batch_folded_into_axis_0_runs_at_once_through_reshape_and_transpose() -> None:
    # MobileViTv2's attention as the converter emits it: (1, C, H, W) → (C, H*W) rows that
    # hold the batch folded into axis 0, a transpose keeping that axis, then back to (1, ...).
    def body(x):
        y = mb.reshape(x=mb.relu(x=x), shape=[2, 2, 9])
        y = mb.transpose(x=y, perm=[0, 2, 1])
        y = mb.reshape(x=y, shape=[1, 2, 18])
        return mb.softmax(x=y, axis=-1)

    program = CompiledProgram.from_program(_program(body, (1, 4, 3, 3)))
    assert program.row_hazard is None
    stacked, one_by_one = _rows_and_one_by_one(program, torch.randn(5, 4, 3, 3))
    assert stacked.shape == (5, 2, 18)
    torch.testing.assert_close(stacked, one_by_one, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("fold", "hazard"),
    [
        # An op with no rule for folded rows reads them: summing axis 0 would mix samples.
        (lambda y: mb.reduce_sum(x=y, axes=[0], keep_dims=True), "folded"),
        # The program returns the folded tensor itself.
        (lambda y: y, "output"),
        # Transposing the folded axis away.
        (lambda y: mb.transpose(x=y, perm=[1, 0]), "batch axis"),
    ],
)
def test_a_batch_folded_into_axis_0_runs_one_at_a_time_where_it_could_mix(fold, hazard) -> None:
    def body(x):
        return fold(mb.reshape(x=x, shape=[4, 9]))

    program = CompiledProgram.from_program(_program(body, (1, 4, 3, 3)))
    assert program.row_hazard and hazard in program.row_hazard
    stacked, one_by_one = _rows_and_one_by_one(program, torch.randn(3, 4, 3, 3))
    assert torch.equal(stacked, one_by_one)


def test_a_reshape_that_infers_a_folded_dimension_runs_one_at_a_time() -> None:
    def body(x):
        return mb.reshape(x=mb.reshape(x=x, shape=[4, -1]), shape=[1, 36])

    program = CompiledProgram.from_program(_program(body, (1, 4, 3, 3)))
    assert program.row_hazard and "inferred" in program.row_hazard


def test_several_inputs_and_outputs_by_name() -> None:
    def body(image, scale):
        return mb.mul(x=image, y=scale), mb.reduce_sum(x=image, axes=[1])

    program = CompiledProgram.from_program(_program(body, (1, 3), (1, 1)))
    assert [i.name for i in program.inputs] == ["image", "scale"]
    assert len(program.outputs) == 2
    image, scale = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[2.0]])
    by_name = program.run(scale=scale, image=image)
    by_position = program.run(image, scale)
    product, total = by_name.values()
    assert product.tolist() == [[2.0, 4.0, 6.0]] and total.tolist() == [6.0]
    assert all(
        torch.equal(a, b) for a, b in zip(by_name.values(), by_position.values(), strict=True)
    )
    with pytest.raises(TypeError, match=r"missing \['scale'\]"):
        program.run(image=image)


def test_a_constant_output_is_returned(tmp_path: Path) -> None:
    def body(x):
        return mb.relu(x=x), mb.const(val=np.array([1.0, 2.0], np.float32))

    program = CompiledProgram.from_program(_program(body, (1, 2)))
    relu, constant = program.run(torch.tensor([[-1.0, 1.0]])).values()
    assert relu.tolist() == [[0.0, 1.0]] and constant.tolist() == [1.0, 2.0]


def test_every_reason_is_listed_before_anything_runs() -> None:
    def body(x):
        noise = mb.random_uniform(shape=np.array([1, 3], np.int32))  # an op not implemented
        clamped = mb.clamped_relu(x=x, alpha=0.1, beta=-1.0)  # a mode refused by its check
        return mb.add(x=mb.add(x=x, y=noise), y=clamped)

    with pytest.raises(UnsupportedOpError) as info:
        CompiledProgram.from_program(_program(body, (1, 3)))
    message = str(info.value)
    assert "nothing was run" in message
    assert "random_uniform" in message and "clamped_relu" in message


def _flexible_package(tmp_path: Path, shape) -> Path:
    import coremltools as ct

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).eval()
    traced = torch.jit.trace(model, torch.rand(1, 3, 8, 8))
    mlmodel = ct.convert(
        traced,
        inputs=[ct.TensorType(name="x", shape=shape)],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS16,
    )
    package = tmp_path / "flexible.mlpackage"
    mlmodel.save(str(package))
    return package


def test_flexible_shapes_run_within_their_declared_ranges(tmp_path: Path) -> None:
    import coremltools as ct

    torch.manual_seed(0)
    shape = ct.Shape(shape=(ct.RangeDim(1, 4, default=1), 3, ct.RangeDim(4, 16, default=8), 8))
    program = CompiledProgram.from_package(_flexible_package(tmp_path, shape))
    info = program.inputs[0]
    assert info.shape[0] is None and info.ranges[0] == [1, 4] and info.ranges[2] == [4, 16]
    for n, h in ((1, 8), (3, 12)):
        (out,) = program.run(x=torch.rand(n, 3, h, 8)).values()
        assert out.shape == (n, 4, h, 8)
    with pytest.raises(ShapeError, match=r"axis 2 of \(1, 3, 20, 8\) is outside"):
        program.run(x=torch.rand(1, 3, 20, 8))


def test_enumerated_shapes_are_the_only_ones_accepted(tmp_path: Path) -> None:
    import coremltools as ct

    shapes = ct.EnumeratedShapes(shapes=[(1, 3, 8, 8), (2, 3, 16, 16)], default=(1, 3, 8, 8))
    program = CompiledProgram.from_package(_flexible_package(tmp_path, shapes))
    assert program.inputs[0].enumerated == [[1, 3, 8, 8], [2, 3, 16, 16]]
    assert program.run(x=torch.rand(2, 3, 16, 16))[program.outputs[0].name].shape == (2, 4, 16, 16)
    with pytest.raises(ShapeError, match="not one of the program's enumerated shapes"):
        program.run(x=torch.rand(1, 3, 16, 16))


def test_the_plan_is_cached_beside_the_package_and_loads_without_coremltools(
    fashion_package: Path, tmp_path: Path
) -> None:
    import shutil

    package = tmp_path / fashion_package.name
    shutil.copytree(fashion_package, package)
    batch = torch.rand(4, 1, 28, 28)
    expected = ProgramExecutor(package)(batch)
    folder = plan_folder(package)
    assert (folder / "plan.json").is_file() and (folder / "constants.pt").is_file()
    torch.save(batch, tmp_path / "batch.pt")
    script = (
        "import sys, torch\n"
        "from coreml_bench.executor import ProgramExecutor\n"
        f"out = ProgramExecutor({str(package)!r})(torch.load({str(tmp_path / 'batch.pt')!r}))\n"
        f"torch.save(out, {str(tmp_path / 'out.pt')!r})\n"
        "assert 'coremltools' not in sys.modules, 'coremltools was imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    assert torch.equal(torch.load(tmp_path / "out.pt"), expected)
    # Other package bytes (here: its spec rewritten) invalidate the plan: it is recompiled.
    plan = json.loads((folder / "plan.json").read_text())
    spec = package / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec.write_bytes(spec.read_bytes())  # same bytes: still valid
    assert json.loads((folder / "plan.json").read_text()) == plan
    (folder / "plan.json").write_text(json.dumps({**plan, "source": {}}))
    assert torch.equal(ProgramExecutor(package)(batch), expected)
    assert json.loads((folder / "plan.json").read_text())["source"] == plan["source"]


def test_export_to_torch_export_and_onnx_computes_what_the_executor_computes(
    fashion_package: Path, tmp_path: Path
) -> None:
    import shutil

    import onnxruntime

    package = tmp_path / fashion_package.name
    shutil.copytree(fashion_package, package)
    run = [sys.executable, "-m", "coreml_bench.cli", "export", str(package)]
    subprocess.run([*run, "--to", "pt2", "-o", str(tmp_path / "m.pt2")], check=True, cwd=ROOT)
    subprocess.run([*run, "--to", "onnx", "-o", str(tmp_path / "m.onnx")], check=True, cwd=ROOT)
    subprocess.run([*run, "--to", "code", "-o", str(tmp_path / "m.py")], check=True, cwd=ROOT)
    x = torch.rand(1, 1, 28, 28)
    expected = ProgramExecutor(package)(x)
    exported = torch.export.load(str(tmp_path / "m.pt2")).module()
    # The exported graph has portable convs (no prepacked oneDNN weights): the same maths,
    # another float32 summation order - at most one fp16 step of the output's scale apart.
    scale = float(expected.abs().max())
    assert float((exported(x)[0] - expected).abs().max()) <= 2.0**-10 * scale
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    (onnx_out,) = session.run(None, {"image": x.numpy()})
    np.testing.assert_allclose(onnx_out, expected.numpy(), atol=2e-3 * float(expected.abs().max()))
    assert "conv" in (tmp_path / "m.py").read_text()


def test_a_refused_program_is_recorded_beside_the_package_and_raised_again(
    tmp_path: Path,
) -> None:
    """rule compile_program: a program the executor refuses is no failed job (Core ML may
    still run it); the evaluation raises the recorded reasons without recompiling."""
    import coremltools as ct
    from coreml_bench.executor.runtime import REFUSED_FILE, compile_to

    def body(x):
        return mb.add(x=x, y=mb.random_uniform(shape=np.array([1, 3], np.int32)))

    package = tmp_path / "random.mlpackage"
    ct.convert(_program(body, (1, 3)), convert_to="mlprogram").save(str(package))
    folder = plan_folder(package)
    compile_to(package, folder)
    recorded = json.loads((folder / REFUSED_FILE).read_text())
    assert "random_uniform" in recorded["reason"]
    with pytest.raises(UnsupportedOpError, match=r"random_uniform.*not implemented"):
        ProgramExecutor(package)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")
def test_a_package_runs_on_cuda_as_on_the_cpu(fashion_package: Path, tmp_path: Path) -> None:
    import shutil

    package = tmp_path / fashion_package.name
    shutil.copytree(fashion_package, package)
    batch = torch.rand(16, 1, 28, 28)
    on_cpu = ProgramExecutor(package)(batch)
    on_gpu = ProgramExecutor(package, device="cuda")(batch)
    scale = float(on_cpu.abs().max())
    assert float((on_gpu - on_cpu).abs().max()) <= 2.0**-9 * scale
