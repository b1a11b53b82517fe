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
        model=model_params,
    script:
        STAGE_SCRIPT
