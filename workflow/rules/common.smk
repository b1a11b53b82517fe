import re
from types import SimpleNamespace

from snakemake.exceptions import WorkflowError

from coreml_bench.fingerprint import code_fingerprint


# Wildcards only ever take configured ids, so no rule can match a stray path.
wildcard_constraints:
    model="|".join(re.escape(m.id) for m in CFG.models),
    experiment="|".join(re.escape(e.id) for e in CFG.experiments),
    trial=r"\d+",


class Ids(SimpleNamespace):
    """Wildcard values for calling input functions outside a job (tables, tracking)."""


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
# (model, experiment) pairs measured one tensor at a time, and the searches drawing on them.
SENSITIVITY_PAIRS = CFG.sensitivity_pairs()
SENSITIVITY_EXPERIMENTS = sorted({e for _, e in SENSITIVITY_PAIRS})
MIXED_EXPERIMENTS = [
    e.id for e in CFG.experiments if e.compression.algorithm == "mixed_precision"
]
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
        "results/plots/frontier.png",
    ]
    if REFERENCE is not None:
        outputs += ["results/reference/gate.md", "results/reference/gate.csv"]
    if SENSITIVITY_PAIRS:
        outputs += ["results/tables/sensitivity.csv", "results/tables/sensitivity.md"]
        outputs += sensitivity_plots()
    if CFG.tracking.enabled:
        outputs.append("results/tracking/study.json")
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


def variant_logs(ids):
    """The job logs behind one variant: they go to MLflow with its other artifacts."""
    logs = [
        f"results/logs/evaluate/{VARIANT}.log".format(**vars(ids)),
        f"results/logs/profile/{VARIANT}.log".format(**vars(ids)),
    ]
    if not is_baseline(ids):
        logs.append(f"results/logs/compress/{VARIANT}.log".format(**vars(ids)))
    return logs


def tracked_variants():
    """What track mirrors of each variant (files and MLflow params)."""
    variants = []
    for m, e, t in CFG.variants():
        ids = Ids(model=m, experiment=e, trial=str(t))
        variants.append(
            {
                "model": m,
                "experiment": e,
                "trial": t,
                "package": variant_package(ids),
                "manifest": variant_manifest(ids),
                "evaluation": f"results/evaluation/{VARIANT}.json".format(**vars(ids)),
                "profile": f"results/profile/{VARIANT}.json".format(**vars(ids)),
                "logs": variant_logs(ids),
                "run_params": run_params(ids),
            }
        )
    return variants


def tracking_sensitivity(wildcards):
    """The per-layer table and charts, and the searches' records, where the config has them."""
    inputs = {}
    if SENSITIVITY_PAIRS:
        inputs["sensitivity_csv"] = "results/tables/sensitivity.csv"
        inputs["sensitivity_files"] = [
            "results/tables/sensitivity.md",
            *sensitivity_plots(),
        ]
    searches = [
        f"results/mixed_precision/{m}/{e}"
        for m, e, t in CFG.variants()
        if e in MIXED_EXPERIMENTS and t == 1
    ]
    if searches:
        inputs["searches"] = [f"{s}/search.json" for s in searches]
        inputs["selections"] = [f"{s}/selection.yaml" for s in searches]
    return inputs


def tracking_gate(wildcards):
    """The reference gate's report, mirrored as a study table where the config has one."""
    if REFERENCE is None:
        return {}
    return {
        "gate_csv": "results/reference/gate.csv",
        "gate_md": "results/reference/gate.md",
    }


def timing_threads(wildcards):
    """Timing needs the machine to itself: locally, claim every core so no job runs beside it.

    On a cluster a job asks for what it uses (profiling.threads; the scheduler isolates it,
    e.g. slurm_extra --exclusive in the profile), the same figure at submission and in the
    job. Profilers that time another machine (remote) need one thread.
    """
    if not PROFILER_TIMES_THIS_HOST:
        return 1
    if workflow.remote_exec or not workflow.local_exec:
        return CFG.profiling.threads
    try:
        return workflow.cores
    except WorkflowError:
        return CFG.profiling.threads


def compiled_program(wildcards):
    """The package's program compiled for the executor (rule compile_program), beside it."""
    return f"{variant_package(wildcards)}.torch"


def evaluation_program(wildcards):
    """The compiled program, for evaluators that run it (Core ML itself needs none)."""
    if CFG.evaluation_runs_program():
        return {"program": compiled_program(wildcards)}
    return {}


def profile_program(wildcards):
    if CFG.profiler().runs_program:
        return {"program": compiled_program(wildcards)}
    return {}


def package_manifest(wildcards):
    """The manifest beside a converted or compressed package (``where`` is its path)."""
    folder, _, name = wildcards.where.rpartition("/")
    if wildcards.where.startswith("converted/"):
        return f"results/{wildcards.where}.json"
    return f"results/{folder}/manifest.json"


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


def baseline_validation_data(wildcards):
    """What the baseline's training validates on (the recipe's settings, not data.*)."""
    return CFG.baseline_validation_params(wildcards.model)


def torch_job_data(wildcards):
    return CFG.torch_job_data(
        wildcards.model, wildcards.experiment, int(wildcards.trial)
    )


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


def run_data(model_id, experiment):
    """The data one variant's results depend on: its evaluation, and its training split
    where something of it trains (a trained baseline, a torch-side experiment)."""
    data = CFG.evaluation_params(model_id)
    trains = CFG.model(model_id).source.kind == "train"
    if trains or experiment.algorithm().kind == "torch":
        data["training"] = CFG.training_params(model_id)
    return data


def run_params(wildcards):
    """Everything that defines one run, flattened into MLflow params."""
    experiment = CFG.experiment(wildcards.experiment)
    return {
        "model": CFG.model(wildcards.model).resolved(),
        "experiment": experiment.model_dump(mode="json", exclude={"models", "trials"}),
        "config_label": experiment.effective_label(),
        "trial": int(wildcards.trial),
        "data": run_data(wildcards.model, experiment),
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
    return [
        variant_manifest(Ids(model=m, experiment=e, trial=str(t)))
        for m, e, t in CFG.variants()
    ]


def all_variant_packages():
    return [
        variant_package(Ids(model=m, experiment=e, trial=str(t)))
        for m, e, t in CFG.variants()
    ]


# ------------------------------------------------------- sensitivity and mixed precision


def calibration_data(wildcards):
    """The calibration split of one model's jobs (sensitivity.calibration views)."""
    return CFG.calibration_params(wildcards.model)


def _first_trial(model, experiment):
    return f"results/compressed/{model}/{experiment}/trial1"


def sensitivity_inputs(wildcards):
    """fp16 and the setting's compressed package (trial 1), each with its compiled plan."""
    fp16 = f"results/converted/{wildcards.model}/fp16"
    compressed = _first_trial(wildcards.model, wildcards.experiment)
    return {
        "fp16_package": f"{fp16}.mlpackage",
        "fp16_manifest": f"{fp16}.json",
        "fp16_program": f"{fp16}.mlpackage.torch",
        "package": f"{compressed}/model.mlpackage",
        "manifest": f"{compressed}/manifest.json",
        "program": f"{compressed}/model.mlpackage.torch",
    }


def sensitivity_setting(wildcards):
    experiment = CFG.experiment(wildcards.experiment)
    return {
        "experiment": experiment.id,
        "label": experiment.effective_label(),
        "compression": experiment.compression.model_dump(mode="json"),
    }


def sensitivity_records():
    return [f"results/sensitivity/{m}/{e}.json" for m, e in SENSITIVITY_PAIRS]


def sensitivity_plots():
    return [f"results/plots/sensitivity/{m}/{e}.png" for m, e in SENSITIVITY_PAIRS]


def search_inputs(wildcards):
    """The sensitivity records of the search's candidates (in their order), and the
    manifest of the experiment whose package size is the budget, where it names one."""
    compression = CFG.experiment(wildcards.experiment).compression
    inputs = {
        "records": [
            f"results/sensitivity/{wildcards.model}/{e}.json"
            for e in compression.candidates
        ]
    }
    if compression.size_of is not None:
        inputs["size_of"] = (
            f"{_first_trial(wildcards.model, compression.size_of)}/manifest.json"
        )
    return inputs


def candidate_params(wildcards):
    compression = CFG.experiment(wildcards.experiment).compression
    return {
        e: CFG.experiment(e).compression.model_dump(mode="json")
        for e in compression.candidates
    }


def compress_inputs(wildcards):
    """What an algorithm reads beyond the fp16 package (``Algorithm.inputs``)."""
    inputs = {}
    needs = CFG.experiment(wildcards.experiment).algorithm().inputs
    if "selection" in needs:
        inputs["selection"] = (
            f"results/mixed_precision/{wildcards.model}/{wildcards.experiment}/selection.yaml"
        )
    if "calibration" in needs:
        inputs["calibration_program"] = (
            f"results/converted/{wildcards.model}/fp16.mlpackage.torch"
        )
    return inputs


def compress_calibration(wildcards):
    """The calibration split, for algorithms that calibrate on it; None for the others."""
    if "calibration" in CFG.experiment(wildcards.experiment).algorithm().inputs:
        preprocessing = CFG.model_params(wildcards.model)["preprocessing"]
        return {
            **CFG.calibration_params(wildcards.model),
            "preprocessing": preprocessing,
        }
    return None
