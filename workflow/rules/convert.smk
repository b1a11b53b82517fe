rule convert:
    input:
        weights="results/weights/{model}.pth",
    output:
        package=directory("results/converted/{model}/fp16.mlpackage"),
        manifest="results/converted/{model}/fp16.json",
    wildcard_constraints:
        model=CONVERTED_MODELS,
    params:
        model=model_params,
        conversion=CFG.conversion.model_dump(mode="json"),
    threads: 2
    resources:
        mem_mb=4000,
    log:
        "results/logs/convert/{model}.log",
    benchmark:
        "results/benchmarks/convert/{model}.tsv"
    conda:
        "../../envs/coreml-bench.yaml"
    script:
        STAGE_SCRIPT
