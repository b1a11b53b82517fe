"""The Core ML program executor: runs a package's ML program op by op with torch.

``runner`` loads and runs programs (``ProgramExecutor``); ``ops`` holds the op table, one
module per op family. The program loader and weight decompression are ``mlpackage.program``.
"""

from .runner import ProgramExecutor, UnsupportedOpError, batch_hazard, unsupported_ops

__all__ = ["ProgramExecutor", "UnsupportedOpError", "batch_hazard", "unsupported_ops"]
