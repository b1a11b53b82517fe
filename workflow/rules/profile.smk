rule profile:
    input:
        unpack(profile_program),
        package=variant_package,
        manifest=variant_manifest,
    output:
        f"results/profile/{VARIANT}.json",
    log:
        f"results/logs/profile/{VARIANT}.log",
    benchmark:
        f"results/benchmarks/profile/{VARIANT}.tsv"
    conda:
        "../../envs/coreml-bench.yaml"
    threads: timing_threads
    resources:
        mem_mb=4000,
    params:
        code=code_fingerprint("profile"),
        model=model_params,
        profiling=CFG.profiling.model_dump(mode="json"),
    script:
        STAGE_SCRIPT
