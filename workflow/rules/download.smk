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
        "../scripts/download_weights.py"
