"""Snakemake script for rule evaluate; the logic is coreml_bench.jobs.evaluate_job."""

from coreml_bench.jobs import evaluate_job

evaluate_job(snakemake)  # noqa: F821 - injected by Snakemake
