"""Snakemake script for rule download_weights; the logic is coreml_bench.jobs.download_job."""

from coreml_bench.jobs import download_job

download_job(snakemake)  # noqa: F821 - injected by Snakemake
