"""How much of the MIL op set the executor runs, and how much of it is checked.

Runs the conformance suite's cases (``tests/mil_conformance.py``, case lists in
``tests/executor/cases/``) at every dtype they declare, counts them per op, and lists the
registered ops that have no case. Writes benchmarks/executor_conformance.md.

    .venv/bin/python benchmarks/executor_conformance.py
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
sys.path.insert(0, str(ROOT / "tests"))

from _report import write_keeping_notes  # noqa: E402
from coreml_bench.executor.ops import OPS  # noqa: E402
from mil_conformance import all_cases, run_case, run_refusal  # noqa: E402

OUT = ROOT / "benchmarks" / "executor_conformance.md"


def main() -> int:
    t0 = time.perf_counter()
    gathered = all_cases()
    passed: Counter[tuple[str, str]] = Counter()
    failed: list[str] = []
    modes: dict[str, set[str]] = {}
    for case in gathered.cases:
        modes.setdefault(case.op, set()).add(case.label)
        for dtype in case.dtypes:
            try:
                run_case(case, dtype)
            except Exception as error:  # a failing case is reported, not hidden
                failed.append(f"{case.id} at {dtype}: {str(error).splitlines()[0][:160]}")
            else:
                passed[(case.op, dtype)] += 1
    refused: Counter[str] = Counter()
    for refusal in gathered.refusals:
        try:
            message = run_refusal(refusal)
            assert refusal.reason in message
        except Exception as error:
            failed.append(f"refusal {refusal.id}: {str(error).splitlines()[0][:160]}")
        else:
            refused[refusal.op] += 1
    ops = sorted(set(OPS) | set(modes) | set(refused))
    lines = [
        "# Executor conformance: every op against its MIL definition",
        "",
        f"Measured by `benchmarks/executor_conformance.py` on {time.strftime('%Y-%m-%d')} "
        f"({time.perf_counter() - t0:.0f} s). A case is one op in one mode (attributes, optional "
        "inputs, dtypes of integer inputs) run through the compiled executor and compared with "
        "MIL's own value inference or a reference written from the op's definition; it runs at "
        "fp32 and at fp16 inputs. A refusal is a mode the executor does not implement, checked "
        "to be refused before anything runs.",
        "",
        f"**{len(OPS)} op types registered; {sum(passed.values())} case runs passed "
        f"({sum(v for (_, d), v in passed.items() if d == 'fp32')} fp32, "
        f"{sum(v for (_, d), v in passed.items() if d == 'fp16')} fp16) over "
        f"{len(gathered.cases)} cases; {sum(refused.values())} refusals; {len(failed)} failed.**",
        "",
        "| op | modes | fp32 runs | fp16 runs | refusals |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for op in ops:
        lines.append(
            f"| {op} | {len(modes.get(op, ()))} | {passed[(op, 'fp32')]} | "
            f"{passed[(op, 'fp16')]} | {refused[op]} |"
        )
    untested = [op for op in sorted(OPS) if op not in modes]
    lines += ["", f"Registered ops without a case: {', '.join(untested) or 'none'}.", ""]
    if failed:
        lines += ["Failed:", "", *[f"* {f}" for f in failed], ""]
    write_keeping_notes(OUT, "\n".join(lines))
    print(f"{sum(passed.values())} passed, {len(failed)} failed -> {OUT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
