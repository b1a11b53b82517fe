# Reproduce Core ML model-compression benchmarks:
# download-weights → convert → compress → compile → evaluate → profile → track → aggregate.
import os
import sys

from snakemake.utils import min_version

min_version("9.20")

# The logic lives in workflow/coreml_bench: importable here even where it is not pip-installed
# (each job script does the same from its own location).
sys.path.insert(0, os.path.join(workflow.basedir, "workflow"))

from coreml_bench.config import check_local_paths, validate_config  # noqa: E402
from coreml_bench.config.files import read_config_file  # noqa: E402


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


# One validation up front: a bad config stops here, before any job, naming field and value.
# coremltools' own check of torch-side settings runs in rule check_torch_settings instead
# (it imports coremltools.optimize.torch: seconds on every parse, on every cluster node).
# Snakemake has read the config files already; reading each again strictly makes the workflow
# refuse what `coreml-bench check-config` refuses (duplicate keys, templates, non-mappings).
for path in workflow.configfiles:
    read_config_file(path)
CFG = validate_config(config, coremltools_check=False)
# A dry run plans without the data (the whole paper, where ImageNet and COCO are elsewhere).
MISSING_DATA = check_local_paths(CFG, planning_only=workflow.output_settings.dryrun)
if MISSING_DATA:
    logger.warning(
        "dry run: these inputs are not on disk here; a real run stops on them:\n"
        + "\n".join(MISSING_DATA)
    )


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/convert.smk"
include: "workflow/rules/check.smk"
include: "workflow/rules/compress.smk"
include: "workflow/rules/compress_torch.smk"
include: "workflow/rules/compile.smk"
include: "workflow/rules/sensitivity.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/profile.smk"
include: "workflow/rules/track.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/reference.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
