import re

from snakemake.exceptions import WorkflowError


# Wildcards only ever take configured ids, so no rule can match a stray path.
wildcard_constraints:
    model="|".join(re.escape(m.id) for m in CFG.models),
    experiment="|".join(re.escape(e.id) for e in CFG.experiments),
    trial=r"\d+",


def _id_pattern(ids):
    """A regex matching exactly these ids; one that matches nothing when there are none."""
    return "|".join(re.escape(i) for i in ids) or "(?!)"


# Trained baselines come from rule train_baseline, published Core ML packages from
# import_package (in place of convert), every other source from download_weights.
TRAINED_MODELS = _id_pattern(m.id for m in CFG.models if m.source.kind == "train")
PUBLISHED_PACKAGES = _id_pattern(
    m.id for m in CFG.models if m.source.kind == "coreml_package"
)
INITIALISED_MODELS = _id_pattern(
    m.id for m in CFG.models if m.source.kind == "train" and m.source.init is not None
)
DOWNLOADED_MODELS = _id_pattern(
    m.id for m in CFG.models if m.source.kind not in ("train", "coreml_package")
)
CONVERTED_MODELS = _id_pattern(
    m.id for m in CFG.models if m.source.kind != "coreml_package"
)

# Core ML-side algorithms compress the fp16 package (rule compress); torch-side ones
# compress the fp32 model before conversion (rule compress_torch).
COREML_EXPERIMENTS = [e.id for e in CFG.experiments if e.algorithm().kind == "coreml"]
TORCH_EXPERIMENTS = [e.id for e in CFG.experiments if e.algorithm().kind == "torch"]
# Torch-side experiments whose coremltools config is a published file (by URL).
PUBLISHED_CONFIG_EXPERIMENTS = [e.id for e in CFG.experiments if e.published_config()]
VARIANT = "{model}/{experiment}/trial{trial}"
# What the reference gate reads; None where no model has published rows (no gate rules).
REFERENCE = CFG.reference_params()
# Whether profile jobs time work on the machine they run on (then they claim every core).
PROFILER_TIMES_THIS_HOST = CFG.profiler().times_this_host
# One script for all: coreml_bench.jobs dispatches on the name of the job's rule.
STAGE_SCRIPT = "../scripts/run_stage.py"


def final_outputs():
    outputs = [
        "results/tables/summary.csv",
        "results/tables/summary.md",
        "results/plots/pareto.png",
    ]
    if REFERENCE is not None:
        outputs += ["results/reference/gate.md", "results/reference/gate.csv"]
    if CFG.tracking.enabled:
        outputs += [
            f"results/tracking/{m}/{e}/trial{t}.json" for m, e, t in CFG.variants()
        ]
    return outputs


def is_baseline(wildcards):
    return CFG.experiment(wildcards.experiment).algorithm().is_baseline


def variant_package(wildcards):
    """The package a variant measures: the fp16 conversion, or its compressed copy."""
    if is_baseline(wildcards):
        return f"results/converted/{wildcards.model}/fp16.mlpackage"
    return f"results/compressed/{wildcards.model}/{wildcards.experiment}/trial{wildcards.trial}/model.mlpackage"


def variant_manifest(wildcards):
    if is_baseline(wildcards):
        return f"results/converted/{wildcards.model}/fp16.json"
    return f"results/compressed/{wildcards.model}/{wildcards.experiment}/trial{wildcards.trial}/manifest.json"


def variant_logs(wildcards):
    """The job logs behind one variant: they go to MLflow with its other artifacts."""
    logs = [
        f"results/logs/evaluate/{VARIANT}.log".format(**wildcards),
        f"results/logs/profile/{VARIANT}.log".format(**wildcards),
    ]
    if not is_baseline(wildcards):
        logs.append(f"results/logs/compress/{VARIANT}.log".format(**wildcards))
    return logs


def timing_threads(wildcards):
    """Timing needs the machine to itself: claim every local core so no job runs beside it.

    Profilers that time another machine (remote) need one. Where no core count is set
    (cluster executors, --report) fall back to the torch threads.
    """
    if not PROFILER_TIMES_THIS_HOST:
        return 1
    try:
        return workflow.cores
    except WorkflowError:
        return CFG.profiling.threads


def evaluation_weights(wildcards):
    """The torch checkpoint, for evaluators that read it (published packages have none)."""
    if CFG.evaluation_needs_checkpoint():
        return {"weights": f"results/weights/{wildcards.model}.pth"}
    return {}


def evaluation_data(wildcards):
    """The evaluation data of one model's jobs: its own set where it has one."""
    return CFG.evaluation_params(wildcards.model)


def compression_config(wildcards):
    """The downloaded copy of an experiment's published coremltools config, if it has one."""
    if wildcards.experiment in PUBLISHED_CONFIG_EXPERIMENTS:
        return {"config_yaml": f"results/configs/{wildcards.experiment}/config.yaml"}
    return {}


def init_weights(wildcards):
    """The checkpoint a trained baseline starts from, where its source names one."""
    if CFG.model(wildcards.model).source.init is not None:
        return {"init": f"results/weights/init/{wildcards.model}.pth"}
    return {}


def training_data(wildcards):
    """The training split of one model's jobs: its own where it has one."""
    return CFG.training_params(wildcards.model)


def model_params(wildcards):
    return CFG.model_params(wildcards.model)


def compression_params(wildcards):
    return CFG.experiment(wildcards.experiment).compression.model_dump(mode="json")


def finetune_recipe(wildcards):
    """The effective fine-tuning recipe (JSON) of one job; None for algorithms that don't train."""
    return CFG.finetune_recipe(
        wildcards.model, wildcards.experiment, int(wildcards.trial)
    )


def run_params(wildcards):
    """Everything that defines one run, flattened into MLflow params."""
    experiment = CFG.experiment(wildcards.experiment)
    return {
        "model": CFG.model(wildcards.model).resolved(),
        "experiment": experiment.model_dump(mode="json", exclude={"models", "trials"}),
        "config_label": experiment.effective_label(),
        "trial": int(wildcards.trial),
        "data": {
            **CFG.data.model_dump(mode="json"),
            **CFG.evaluation_params(wildcards.model),
        },
        "conversion": CFG.conversion.model_dump(mode="json"),
        "evaluation": CFG.evaluation.model_dump(mode="json"),
        "profiling": CFG.profiling.model_dump(mode="json"),
    }


def table_rows():
    """Row order and labels for the tables: config order, one entry per variant."""
    return CFG.table_rows()


def variant_files(pattern):
    return [
        pattern.format(model=m, experiment=e, trial=t) for m, e, t in CFG.variants()
    ]


def all_variant_manifests():
    wc = type("Wildcards", (), {})
    paths = []
    for m, e, t in CFG.variants():
        wc.model, wc.experiment, wc.trial = m, e, t
        paths.append(variant_manifest(wc))
    return paths
