"""Snakemake script for rule profile; the logic is coreml_bench.jobs.profile_job."""

from coreml_bench.jobs import profile_job

profile_job(snakemake)  # noqa: F821 - injected by Snakemake
