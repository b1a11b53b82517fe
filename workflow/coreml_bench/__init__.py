"""coreml_bench: reproduce Core ML model-compression benchmarks with Snakemake."""

__version__ = "0.1.0"
