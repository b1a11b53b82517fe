"""Snakemake script for rule compress; the logic is coreml_bench.jobs.compress_job."""

from coreml_bench.jobs import compress_job

compress_job(snakemake)  # noqa: F821 - injected by Snakemake
