"""``Plan`` → ``torch.fx.GraphModule``: one call per op, weights as buffers, no interpreter.

The graph takes the program's inputs as positional arguments (in the program's order) and
returns a tuple of its outputs. Two rewrites make it cheaper than running the ops one by one,
without changing a single value:

* fp16 rounding of a fresh result (one no other op shares memory with) runs in place;
* a unary op (``relu``, ``sigmoid``, ...) whose input nothing else reads overwrites it.

Rank-4 tensors (program inputs and conv weights) are laid out channels-last: oneDNN's
convolutions run 1.3-3× faster on it than on NCHW (measured on MobileNetV2 and ResNet50,
CPU). Layout changes no value; every op reads tensors by logical index.

``rows=True`` builds the row-batched variant (see ``runtime``): ops that name the batch-1
shape (``reshape``'s leading 1) take the batch size from their input instead.

A stateful program's states follow the inputs as placeholders, passed as they are: the
caller's buffers, which ``coreml_update_state`` steps write in place (kept in program order,
never removed as dead code). ``cond`` / ``while_loop`` steps are submodules running their
blocks' own GraphModules (``control_flow``).
"""

from __future__ import annotations

import operator
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from .ops import OPS
from .plan import Plan, resolve

# Ops writing a caller-owned state buffer (``ops/state.py``): never dead code.
STATE_WRITES = ("coreml_update_state",)

if TYPE_CHECKING:
    import torch


def round_fp16(x: Any) -> Any:
    """Round a float tensor to the nearest fp16 value, held in float32 (what every op reads)."""
    import torch

    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.to(torch.float16).to(torch.float32)
    return x


def round_fp16_(x: Any) -> Any:
    """``round_fp16`` in place, for a fresh result: no new float32 buffer is allocated.
    (Two ``copy_`` through an fp16 buffer: as ``x.copy_(x.half())``, without ``to``'s
    dispatch; it runs after nearly every op.)"""
    import torch

    if isinstance(x, torch.Tensor) and x.dtype == torch.float32:
        return x.copy_(_fp16_scratch(x).copy_(x))
    return x


try:  # the compiled one-pass kernels (``_fp16round.c``; optional at install)
    from ._fp16round import hard_swish_inplace as _hard_swish_inplace
    from ._fp16round import isa as _kernel_isa
    from ._fp16round import round_inplace as _round_inplace
except ImportError:  # built without a C compiler: torch's ops, the same values
    _round_inplace = _hard_swish_inplace = _kernel_isa = None

# Up to this many values (8M) the one-pass kernel, on one thread, was measured faster than
# torch's two copies on two threads; above, many threads may win back.
_KERNEL_MAX = 1 << 23


def round_fp16_cpu_(x: Any) -> Any:
    """``round_fp16_`` of a CPU graph: dense float32 memory (contiguous or channels-last) is
    rounded in one pass by the compiled kernel, without dispatch or an fp16 buffer - the
    same values (``x.half().float()``, ties to even, inf / NaN / signed zeros kept)."""
    import torch

    if isinstance(x, torch.Tensor) and x.dtype == torch.float32 and _kernel_memory(x):
        _round_inplace(x.data_ptr(), x.numel())
        return x
    return round_fp16_(x)


def _dense(x: torch.Tensor) -> bool:
    """Contiguous or channels-last: memory with no gaps, which a kernel may sweep whole."""
    import torch

    return x.is_contiguous() or (x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last))


def _kernel_memory(x: torch.Tensor) -> bool:
    """Whether the compiled kernels may run on x's memory, as one sweep, faster than torch."""
    return x.numel() < _KERNEL_MAX and _dense(x)


def hard_swish_fp16_(x: Any, alpha: float, beta: float) -> Any:
    """MIL's hard-swish as the converter writes it, on a fresh fp16-valued ``x`` nothing
    else reads: ``mul(x, round(sigmoid_hard(x, alpha, beta)))``, rounded - five torch ops and
    two roundings (plus an allocation) in one pass of the compiled kernel, written into x;
    the same values (the kernel's fused multiply-add and NaN-keeping clamp are torch's).
    Memory that is not dense runs the ops themselves."""
    from .ops.elementwise import sigmoid_hard

    if _kernel_memory(x):
        _hard_swish_inplace(x.data_ptr(), x.numel(), alpha, beta)
        return x
    gate = round_fp16_(sigmoid_hard(x, alpha, beta))
    return round_fp16_(x.mul_(gate))


def _hard_swish(step: Any, readers: dict[str, Any], consumers: Any, fresh: set[str],
                shapes: dict[str, Any]) -> Any:  # fmt: skip
    """The ``mul`` completing a hard-swish that starts at this ``sigmoid_hard`` step, with
    its scalars, where the whole of it may run as ``hard_swish_fp16_``: x fresh and read
    only by the two, the gate read only by the mul, literal alpha / beta, one fp16 type."""
    from .ops.registry import number

    if step.op != "sigmoid_hard" or not step.round[0]:
        return None
    x, gate = step.inputs["x"].get("ref"), step.outputs[0]
    scalars = [step.inputs.get(k, {"value": d}).get("value") for k, d in (("alpha", 0.2),
               ("beta", 0.5))]  # fmt: skip
    mul = readers.get(gate)
    if (
        x not in fresh
        or consumers[x] != 2
        or consumers[gate] != 1
        or mul is None
        or readers.get(x) is not mul
        or mul.op != "mul"
        or mul.blocks
        or not mul.round[0]
        or sorted(a.get("ref", "") for a in mul.inputs.values()) != sorted([x, gate])
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scalars)
    ):
        return None
    fp16 = ("fp16", tuple(step.shapes[0]))
    if shapes[x] != fp16 or (mul.dtypes[0], tuple(mul.shapes[0])) != fp16 or None in fp16[1]:
        return None
    return mul, [float(number(v)) for v in scalars]


def in_place_rounding(device: str, fast: bool) -> Any:
    """The in-place rounding a graph calls: the compiled kernel on CPU where it is built with
    a hardware path and the graph is ``fast`` (an exported graph traces torch ops only, never
    raw memory). The kernel's portable C path (no F16C / AVX-512) is exact but ~20x slower
    than F16C and slower than torch's copies (140 vs 12 us on 200k values), so not used."""
    import torch

    if (
        fast
        and _round_inplace is not None
        and torch.device(device).type == "cpu"
        and _kernel_isa() != "portable"
    ):
        return round_fp16_cpu_
    return round_fp16_


# Large tensors round through one fp16 buffer per thread, kept and grown as needed: a fresh
# buffer above glibc's mmap threshold (at most 32 MB) is new pages every call, and their
# first-touch faults made a 67 MB round 4.7x slower (8x128x128x128: 16.3 ms vs 3.5 ms).
_SCRATCH_MIN = 1 << 18  # elements; smaller buffers come from malloc's free lists anyway
_scratch = threading.local()


def _fp16_scratch(x: torch.Tensor) -> torch.Tensor:
    """An fp16 tensor laid out as ``x`` (same strides), to round ``x`` through."""
    import torch

    # Cheapest test first: most roundings are of small tensors, on the hot path.
    if x.numel() < _SCRATCH_MIN or x.device.type != "cpu" or not _dense(x):
        return torch.empty_like(x, dtype=torch.float16)
    buffer = getattr(_scratch, "fp16", None)
    if buffer is None or buffer.numel() < x.numel():
        buffer = _scratch.fp16 = torch.empty(x.numel(), dtype=torch.float16)
    return buffer.as_strided(x.shape, x.stride())


def to_float32(x: Any) -> Any:
    return x.float() if x.is_floating_point() else x  # fp16 / fp64 callers too


def channels_last(x: Any) -> Any:
    import torch

    if isinstance(x, torch.Tensor) and x.ndim == 4 and x.is_floating_point():
        return x.contiguous(memory_format=torch.channels_last)
    return x


def build_graph_module(
    plan: Plan,
    rows: bool = False,
    device: str = "cpu",
    layout: bool = True,
    fast: bool = True,
    raw_inputs: bool = False,
) -> Any:
    """``layout``: channels-last rank-4 tensors (see above); off only to compare layouts.
    ``fast``: ops may bind prepacked (opaque oneDNN) weights and fuse a following relu/clip
    (``OpEntry.specialize``); off for a graph that is exported. ``raw_inputs``: inputs are
    taken as they come, neither rounded nor re-laid out (a control-flow block's inputs,
    computed by the graph around it)."""
    import torch
    import torch.fx as fx

    from .ops.registry import BuildContext

    conv_weights = {
        step.inputs["weight"]["const"]
        for step in plan.steps
        if step.op in ("conv", "conv_transpose") and "const" in step.inputs.get("weight", {})
    }
    rounding = in_place_rounding(device, fast)
    root = torch.nn.Module()
    for key, tensor in plan.constants.items():
        tensor = tensor.to(device)
        if layout and key in conv_weights:
            tensor = channels_last(tensor)
        root.register_buffer(key, tensor, persistent=False)
    graph = fx.Graph()
    env: dict[str, fx.Node] = {}
    for info in plan.inputs:
        node = graph.placeholder(_identifier(info.name))
        if raw_inputs:
            env[info.name] = node
            continue
        # Program inputs declared fp16 take fp16 values; float32 callers are rounded here.
        node = graph.call_function(round_fp16 if info.dtype == "fp16" else to_float32, (node,))
        env[info.name] = graph.call_function(channels_last, (node,)) if layout else node
    for info in plan.states:
        env[info.name] = graph.placeholder(_identifier(info.name))  # the buffer itself
    consumers: Counter[str] = Counter()
    for step in plan.steps:
        for name in step.refs():
            consumers[name] += 1
    for out in plan.outputs:
        consumers[out.name] += 1
    fresh: set[str] = set()  # results no other tensor aliases
    shapes = {i.name: (i.dtype, tuple(i.shape)) for i in [*plan.inputs, *plan.states]}
    readers: dict[str, Any] = {}  # result → the step reading it (when exactly one does)
    for step in plan.steps:
        shapes.update(
            (o, (d, tuple(s)))
            for o, d, s in zip(step.outputs, step.dtypes, step.shapes, strict=True)
        )
        for name in step.refs():
            readers[name] = step
    output_names = {o.name for o in plan.outputs}
    fused_into: dict[str, str] = {}
    constants: dict[str, fx.Node] = {}
    effects: set[fx.Node] = set()  # nodes writing a state: kept though nothing reads them

    def constant_node(key: str) -> fx.Node:
        if key not in constants:
            constants[key] = graph.get_attr(key)
        return constants[key]

    def argument(arg: dict[str, Any]) -> Any:
        return resolve(arg, env.__getitem__, constant_node)

    folded: dict[str, Any] = {}  # results of ops on constants only, computed once here

    def constant_value(arg: dict[str, Any]) -> Any:
        return resolve(arg, folded.__getitem__, plan.constants.__getitem__)

    done: set[int] = set()  # steps computed by an earlier, fused one (hard-swish's mul)
    for step in plan.steps:
        if id(step) in done:
            continue
        hard_swish = None
        if rounding is round_fp16_cpu_:  # the fused form needs the kernels
            hard_swish = _hard_swish(step, readers, consumers, fresh, shapes)
        if hard_swish is not None:
            mul, scalars = hard_swish
            node = graph.call_function(hard_swish_fp16_, (env[step.inputs["x"]["ref"]], *scalars))
            env[mul.outputs[0]] = node
            fresh.add(mul.outputs[0])
            done.add(id(mul))
            continue
        if step.blocks:
            from .control_flow import build_control_flow

            module = build_control_flow(step, plan, shapes, device, layout, fast)
            key = f"{step.op}_{len(list(root.children()))}"
            root.add_module(key, module)
            arguments = [argument(v) for v in step.inputs.values()]
            if step.op == "while_loop":
                arguments = arguments[0]  # the loop variables, one argument each
            arguments += [env[name] for block in step.blocks for name in block.captured]
            node = graph.call_module(key, tuple(arguments))
            if module.writes_state:
                effects.add(node)
            results = [
                graph.call_function(operator.getitem, (node, i)) for i in range(len(step.outputs))
            ]
            _record(step, None, results, env, fresh, graph, False)
            continue
        entry = OPS[step.op]
        if all(r in folded for r in step.refs()):
            # An op on constants (fill, range_1d, ...) is folded: computed once on the CPU,
            # then held as a buffer on the graph's device like every other constant.
            kwargs = {k: constant_value(v) for k, v in step.inputs.items()}
            if entry.takes_op:
                kwargs["op"] = step.op
            result = entry.run(**kwargs)
            results = result if isinstance(result, tuple) else (result,)
            for name, value, rounded in zip(step.outputs, results, step.round, strict=True):
                value = round_fp16(value) if rounded else value
                folded[name] = value
                key = f"folded_{len(folded)}"
                if isinstance(value, torch.Tensor):
                    root.register_buffer(key, value.to(device), persistent=False)
                    env[name] = graph.get_attr(key)
                else:
                    env[name] = value
            continue
        kwargs = {k: argument(v) for k, v in step.inputs.items()}
        if entry.takes_op:
            kwargs["op"] = step.op
        if step.outputs[0] in fused_into:
            # This relu/clip was applied by the op before it (see BuildContext.activation).
            env[step.outputs[0]] = env[fused_into[step.outputs[0]]]
            if fused_into[step.outputs[0]] in fresh:
                fresh.add(step.outputs[0])
            continue
        x_ref = step.inputs.get("x", {}).get("ref")
        overwrite = (
            entry.inplace is not None
            and x_ref in fresh
            and consumers[x_ref] == 1
            and _same_type(shapes[x_ref], step, "y" in step.inputs)
        )
        special = None
        if (
            entry.specialize is not None
            and not (rows and entry.batched is not None)
            and not overwrite
        ):
            follower = _sole_activation(step, readers, consumers, output_names)
            context = BuildContext(
                device=torch.device(device).type,
                fast=fast,
                activation=follower[1] if follower else None,
            )
            special = entry.specialize(_build_time_view(step.inputs, plan, shapes), context)
        if special is not None:
            function, keys, applied = special
            node = graph.call_function(function, tuple(kwargs[k] for k in keys))
            if step.op in STATE_WRITES:
                effects.add(node)
            _record(step, entry, [node], env, fresh, graph, entry.fresh, rounding)
            if applied and follower is not None:
                fused_into[follower[0].outputs[0]] = step.outputs[0]
            continue
        target = entry.run
        if rows and entry.batched is not None:
            target = entry.batched
        if overwrite:
            target = entry.inplace
        node = graph.call_function(target, (), kwargs)
        if step.op in STATE_WRITES:
            effects.add(node)
        if len(step.outputs) == 1:
            results = [node]
        else:
            results = [
                graph.call_function(operator.getitem, (node, i)) for i in range(len(step.outputs))
            ]
        is_fresh = entry.fresh or target is entry.inplace
        _record(step, entry, results, env, fresh, graph, is_fresh, rounding)
    graph.output(tuple(env[out.name] for out in plan.outputs))
    # State writes stay (in program order) though nothing reads their result. (The default
    # purity check cannot ask a submodule before the GraphModule exists: they are pure here
    # unless they write state.)
    graph.eliminate_dead_code(
        is_impure_node=lambda node: (
            node in effects or (node.op != "call_module" and node.is_impure())
        )
    )
    used = {node.target for node in graph.nodes if node.op == "get_attr"}
    for key in [k for k, _ in root.named_buffers(recurse=False) if k not in used]:
        delattr(root, key)  # weights bound into ops (prepacked) or folded away
    return fx.GraphModule(root, graph, class_name="CoreMLProgram")


def _record(step: Any, entry: Any, results: list[Any], env: dict[str, Any], fresh: set[str],
            graph: Any, is_fresh: bool, in_place: Any = round_fp16_) -> None:  # fmt: skip
    """Bind a step's results, rounded to fp16 where the plan says (in place when fresh, by
    ``in_place``)."""
    for name, result, rounded in zip(step.outputs, results, step.round, strict=True):
        if rounded:
            result = graph.call_function(in_place if is_fresh else round_fp16, (result,))
        env[name] = result
        if is_fresh:
            fresh.add(name)


def _same_type(x: tuple[str, tuple[Any, ...]], step: Any, broadcasts: bool) -> bool:
    """Whether x has the step's result type, so the result may be written into x; for an op
    that broadcasts a second operand, only with every dimension known."""
    dtype, shape = x
    result = step.shapes[0]
    return (
        len(step.outputs) == 1
        and dtype == step.dtypes[0]
        and shape == tuple(result)
        and not (broadcasts and None in result)
    )


def _sole_activation(
    step: Any, readers: dict[str, Any], consumers: Any, outputs: set[str]
) -> tuple[Any, tuple[str, list[float]]] | None:
    """The op that alone reads ``step``'s single result, where it is a oneDNN post-op
    (``OpEntry.post_op``: relu, relu6, a literal clip), with the post-op's name and scalars."""
    if len(step.outputs) != 1:
        return None
    name = step.outputs[0]
    reader = readers.get(name)
    if reader is None or consumers[name] != 1 or name in outputs or reader.blocks:
        return None
    post_op = OPS[reader.op].post_op
    activation = post_op(reader.inputs) if post_op is not None else None
    return (reader, activation) if activation is not None else None


def _build_time_view(inputs: dict[str, Any], plan: Plan, shapes: dict[str, Any]) -> dict[str, Any]:
    """The step's inputs as ``specialize`` sees them: computed ones as ``Computed``."""
    from .ops.registry import Computed

    def computed(name: str) -> Computed:
        return Computed(*shapes.get(name, ("", None)))

    return {k: resolve(v, computed, plan.constants.__getitem__) for k, v in inputs.items()}


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"input_{cleaned}"


def example_inputs(plan: Plan, batch: int | None = None) -> tuple[torch.Tensor, ...]:
    """Random inputs of the program's declared shapes (flexible axes at their lower bound)."""
    import torch

    tensors = []
    for info in plan.inputs:
        if info.enumerated:
            shape = list(info.enumerated[0])
        else:
            shape = [
                d if d is not None else (info.ranges[i][0] if info.ranges else 1)
                for i, d in enumerate(info.shape)
            ]
        if batch is not None and shape:
            shape[0] = batch
        if info.dtype in ("fp16", "fp32", "fp64"):
            tensors.append(torch.rand(shape))
        elif info.dtype == "bool":
            tensors.append(torch.rand(shape) > 0.5)
        else:
            tensors.append(torch.randint(0, 4, shape, dtype=torch.int32))
    return tuple(tensors)
