rule check_torch_settings:
    output:
        "results/checks/torch_settings/{experiment}.json",
    params:
        compression=compression_params,
    wildcard_constraints:
        experiment=_id_pattern(TORCH_EXPERIMENTS),
    localrule: True
    log:
        "results/logs/check_torch_settings/{experiment}.log",
    benchmark:
        "results/benchmarks/check_torch_settings/{experiment}.tsv"
    conda:
        "../../envs/coreml-bench.yaml"
    script:
        STAGE_SCRIPT
