"""The script of every rule: coreml_bench.jobs.run dispatches on the job's rule name."""

import sys
from pathlib import Path

# Jobs may run where the package is not installed (conda envs, cluster nodes).
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 - injected by Snakemake

from coreml_bench.jobs import run

run(snakemake)  # noqa: F821 - injected by Snakemake
