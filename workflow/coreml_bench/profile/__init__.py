"""Profiling: the profiler registry (``registry``) with the ``host``, ``coreml`` and ``remote``
backends (one module each), static figures (``static``) and the stage (``stage``).

Importing this package needs only the standard library: the far side of ``remote`` runs
``python -m coreml_bench.profile`` with just Python, coremltools and numpy.
"""

from . import coreml as _coreml  # noqa: F401 - registers the coreml profiler
from . import host as _host  # noqa: F401 - registers the host profiler
from . import remote as _remote  # noqa: F401 - registers the remote profiler
from .registry import PROFILERS, LatencyRun, Profiler, resolve_profiler

__all__ = ["PROFILERS", "LatencyRun", "Profiler", "resolve_profiler"]
