"""Snakemake script for rule train_baseline; the logic is coreml_bench.jobs.train_baseline_job."""

import sys
from pathlib import Path

# Jobs may run where the package is not installed (conda envs, cluster nodes).
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 - injected by Snakemake

from coreml_bench.jobs import train_baseline_job

train_baseline_job(snakemake)  # noqa: F821 - injected by Snakemake
