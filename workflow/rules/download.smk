rule download_weights:
    output:
        weights="results/weights/{model}.pth",
        manifest="results/weights/{model}.json",
    wildcard_constraints:
        model=DOWNLOADED_MODELS,
    params:
        model=model_params,
    log:
        "results/logs/download_weights/{model}.log",
    benchmark:
        "results/benchmarks/download_weights/{model}.tsv"
    conda:
        "../../envs/coreml-bench.yaml"
    retries: 2
    script:
        STAGE_SCRIPT


rule import_package:
    output:
        archive="results/downloads/{model}.mlpackage.zip",
        package=directory("results/converted/{model}/fp16.mlpackage"),
        manifest="results/converted/{model}/fp16.json",
    wildcard_constraints:
        model=PUBLISHED_PACKAGES,
    params:
        model=model_params,
    log:
        "results/logs/import_package/{model}.log",
    benchmark:
        "results/benchmarks/import_package/{model}.tsv"
    conda:
        "../../envs/coreml-bench.yaml"
    retries: 2
    script:
        STAGE_SCRIPT
