"""The package's one compiled part (metadata lives in pyproject.toml).

``coreml_bench.executor._fp16round``: in-place fp16 rounding in one pass (see its source).
Optional: where no C compiler is found the install goes on and the executor rounds with
torch alone - same values, slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "coreml_bench.executor._fp16round",
            sources=["workflow/coreml_bench/executor/_fp16round.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
