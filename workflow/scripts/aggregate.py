"""Snakemake script for rule aggregate; the logic is coreml_bench.jobs.aggregate_job."""

from coreml_bench.jobs import aggregate_job

aggregate_job(snakemake)  # noqa: F821 - injected by Snakemake
