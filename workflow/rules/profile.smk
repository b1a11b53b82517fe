rule profile:
    input:
        package=variant_package,
        manifest=variant_manifest,
        weights="results/weights/{model}.pth",
    output:
        f"results/profile/{VARIANT}.json",
    params:
        model=model_params,
        profiling=CFG.profiling.model_dump(mode="json"),
    # Timing needs the machine to itself: claim every core so no other job runs alongside.
    threads: workflow.cores
    resources:
        mem_mb=4000,
    log:
        f"results/logs/profile/{VARIANT}.log",
    benchmark:
        f"results/benchmarks/profile/{VARIANT}.tsv"
    conda:
        "../../envs/coreml-bench.yaml"
    script:
        "../scripts/profile.py"
