rule check_torch_settings:
    input:
        unpack(compression_config),
    output:
        "results/checks/torch_settings/{experiment}.json",
    log:
        "results/logs/check_torch_settings/{experiment}.log",
    benchmark:
        "results/benchmarks/check_torch_settings/{experiment}.tsv"
    wildcard_constraints:
        experiment=_id_pattern(TORCH_EXPERIMENTS),
    localrule: True
    conda:
        "../../envs/coreml-bench.yaml"
    params:
        code=code_fingerprint("check_torch_settings"),
        compression=compression_params,
    script:
        STAGE_SCRIPT
