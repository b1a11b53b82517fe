"""Every implemented op, in every mode it accepts, against MIL's definitions at fp32 and fp16
(the harness is ``tests/mil_conformance.py``; the case lists ``tests/executor/cases/``)."""

from __future__ import annotations

import pytest
import torch
from mil_conformance import all_cases, run_case, run_refusal

GATHERED = all_cases()


@pytest.mark.parametrize(
    ("case", "dtype"),
    [(c, d) for c in GATHERED.cases for d in c.dtypes],
    ids=[f"{c.id}-{d}" for c in GATHERED.cases for d in c.dtypes],
)
def test_op_matches_its_mil_definition(case, dtype) -> None:
    run_case(case, dtype)


@pytest.mark.parametrize("refusal", GATHERED.refusals, ids=[r.id for r in GATHERED.refusals])
def test_unsupported_mode_is_refused_before_anything_runs(refusal) -> None:
    message = run_refusal(refusal)
    assert refusal.reason in message, message
    assert "nothing was run" in message


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")
def test_every_case_runs_on_cuda_as_on_the_cpu() -> None:
    """The GPU path: every case at fp32 and fp16 on CUDA, against the same references."""
    failures = []
    for case in GATHERED.cases:
        for dtype in case.dtypes:
            try:
                run_case(case, dtype, device="cuda")
            except Exception as error:  # collected: one report lists every failing case
                failures.append(f"{case.id} at {dtype}: {str(error).splitlines()[0][:200]}")
    assert not failures, "\n".join(failures)
