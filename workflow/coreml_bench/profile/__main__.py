"""Far-side entry point: ``python -m coreml_bench.profile request.json`` (see ``remote``).

Prints one line: the marker, then the latency record as JSON. Needs only Python with
coremltools and numpy (plus torch for the ``host`` backend).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from . import PROFILERS, LatencyRun, resolve_profiler
from .remote import RESULT_MARKER


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m coreml_bench.profile request.json")
    request = json.loads(Path(args[0]).read_text())
    name, profiler = resolve_profiler(request["backend"])
    if not profiler.far_side:
        raise SystemExit(f"profiling backend {name!r} cannot run on the far side")
    assert PROFILERS[name] is profiler
    result = profiler.measure(Path(request["package"]), LatencyRun.from_json(request["run"]))
    print(RESULT_MARKER + json.dumps({**result, "backend": name}), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    main()
