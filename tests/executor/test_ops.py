"""The executor's op table against the MIL op definitions."""

from __future__ import annotations

import numpy as np
import torch


def test_quantize_and_dequantize_follow_the_mil_definitions() -> None:
    from coreml_bench.executor.ops import OPS

    x = torch.tensor([[-100.0, -0.26, 0.0, 0.74, 100.0]])
    args = {"x": x, "scale": np.float16(0.5), "zero_point": np.int8(3), "output_dtype": "int8"}
    q = OPS["quantize"](args, 1)
    # clip(round(x / 0.5) + 3) into int8; round half to even as numpy/torch do.
    assert q.tolist() == [[-128.0, 2.0, 3.0, 4.0, 127.0]]
    d = OPS["dequantize"]({"x": q, "scale": np.float16(0.5), "zero_point": np.int8(3)}, 1)
    assert d.tolist() == [[-65.5, -0.5, 0.0, 0.5, 62.0]]
    # Per-channel scales broadcast along the given axis.
    per_axis = OPS["dequantize"](
        {"x": torch.ones(1, 2, 1, 1), "scale": np.array([0.5, 2.0]), "axis": np.int32(1)}, 1
    )
    assert per_axis.flatten().tolist() == [0.5, 2.0]
