"""Snakemake script for rule import_package; the logic is coreml_bench.jobs.import_package_job."""

import sys
from pathlib import Path

# Jobs may run where the package is not installed (conda envs, cluster nodes).
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 - injected by Snakemake

from coreml_bench.jobs import import_package_job

import_package_job(snakemake)  # noqa: F821 - injected by Snakemake
