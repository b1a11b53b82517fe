"""Snakemake script for rule convert; the logic is coreml_bench.jobs.convert_job."""

from coreml_bench.jobs import convert_job

convert_job(snakemake)  # noqa: F821 - injected by Snakemake
