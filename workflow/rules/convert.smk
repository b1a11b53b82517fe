rule convert:
    input:
        weights="results/weights/{model}.pth",
    output:
        package=directory("results/converted/{model}/fp16.mlpackage"),
        manifest="results/converted/{model}/fp16.json",
    log:
        "results/logs/convert/{model}.log",
    benchmark:
        "results/benchmarks/convert/{model}.tsv"
    wildcard_constraints:
        model=CONVERTED_MODELS,
    conda:
        "../../envs/coreml-bench.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        code=code_fingerprint("convert"),
        model=model_params,
        conversion=CFG.conversion.model_dump(mode="json"),
    script:
        STAGE_SCRIPT
