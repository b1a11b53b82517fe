rule download_weights:
    output:
        weights="results/weights/{model}.pth",
        manifest="results/weights/{model}.json",
    log:
        "results/logs/download_weights/{model}.log",
    benchmark:
        "results/benchmarks/download_weights/{model}.tsv"
    wildcard_constraints:
        model=DOWNLOADED_MODELS,
    retries: 2
    conda:
        "../../envs/coreml-bench.yaml"
    params:
        code=code_fingerprint("download_weights"),
        model=model_params,
    script:
        STAGE_SCRIPT


rule import_package:
    output:
        archive="results/downloads/{model}.mlpackage.zip",
        package=directory("results/converted/{model}/fp16.mlpackage"),
        manifest="results/converted/{model}/fp16.json",
    log:
        "results/logs/import_package/{model}.log",
    benchmark:
        "results/benchmarks/import_package/{model}.tsv"
    wildcard_constraints:
        model=PUBLISHED_PACKAGES,
    retries: 2
    conda:
        "../../envs/coreml-bench.yaml"
    params:
        code=code_fingerprint("import_package"),
        model=model_params,
    script:
        STAGE_SCRIPT


# The weights a trained baseline starts from (e.g. CenterNet's ResNet34 backbone).
rule download_init_weights:
    output:
        weights="results/weights/init/{model}.pth",
        manifest="results/weights/init/{model}.json",
    log:
        "results/logs/download_init_weights/{model}.log",
    benchmark:
        "results/benchmarks/download_init_weights/{model}.tsv"
    wildcard_constraints:
        model=INITIALISED_MODELS,
    retries: 2
    conda:
        "../../envs/coreml-bench.yaml"
    params:
        code=code_fingerprint("download_init_weights"),
        model=model_params,
    script:
        STAGE_SCRIPT


# A coremltools YAML config published by URL (the seeds link one behind each training-time
# row): fetched once, checked against its sha256, read by the experiment's torch-side jobs.
rule download_compression_config:
    output:
        config="results/configs/{experiment}/config.yaml",
        manifest="results/configs/{experiment}/download.json",
    log:
        "results/logs/download_compression_config/{experiment}.log",
    benchmark:
        "results/benchmarks/download_compression_config/{experiment}.tsv"
    wildcard_constraints:
        experiment=_id_pattern(PUBLISHED_CONFIG_EXPERIMENTS),
    retries: 2
    localrule: True
    conda:
        "../../envs/coreml-bench.yaml"
    params:
        code=code_fingerprint("download_compression_config"),
        source=lambda wildcards: CFG.experiment(wildcards.experiment)
        .published_config()
        .model_dump(mode="json"),
    script:
        STAGE_SCRIPT
