"""Snakemake script for rule track; the logic is coreml_bench.jobs.track_job."""

from coreml_bench.jobs import track_job

track_job(snakemake)  # noqa: F821 - injected by Snakemake
