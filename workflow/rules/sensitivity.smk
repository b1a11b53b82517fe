# Per-layer sensitivity (one tensor compressed at a time, through the executor) and the
# budgeted mixed-precision search over it; the searched setting is compressed by rule
# compress like any other (see compress_inputs).
rule sensitivity_reference:
    input:
        package="results/converted/{model}/fp16.mlpackage",
        manifest="results/converted/{model}/fp16.json",
        program="results/converted/{model}/fp16.mlpackage.torch",
    output:
        outputs="results/sensitivity/{model}/reference/outputs.pt",
        record="results/sensitivity/{model}/reference/record.json",
    log:
        "results/logs/sensitivity/{model}/reference.log",
    benchmark:
        "results/benchmarks/sensitivity/{model}/reference.tsv"
    conda:
        "../../envs/coreml-bench.yaml"
    resources:
        mem_mb=4000,
    params:
        code=code_fingerprint("sensitivity_reference"),
        model=model_params,
        data=calibration_data,
    script:
        STAGE_SCRIPT


rule sensitivity:
    input:
        unpack(sensitivity_inputs),
        reference="results/sensitivity/{model}/reference/outputs.pt",
    output:
        "results/sensitivity/{model}/{experiment}.json",
    log:
        "results/logs/sensitivity/{model}/{experiment}.log",
    benchmark:
        "results/benchmarks/sensitivity/{model}/{experiment}.tsv"
    wildcard_constraints:
        experiment=_id_pattern(SENSITIVITY_EXPERIMENTS),
    conda:
        "../../envs/coreml-bench.yaml"
    resources:
        mem_mb=4000,
    params:
        code=code_fingerprint("sensitivity"),
        model=model_params,
        data=calibration_data,
        setting=sensitivity_setting,
    script:
        STAGE_SCRIPT


rule sensitivity_tables:
    input:
        records=sensitivity_records(),
    output:
        csv=report(
            "results/tables/sensitivity.csv",
            caption="../report/sensitivity.rst",
            category="Sensitivity",
        ),
        markdown="results/tables/sensitivity.md",
        plots=report(
            sensitivity_plots(),
            caption="../report/sensitivity.rst",
            category="Sensitivity",
        ),
    log:
        "results/logs/sensitivity_tables/sensitivity_tables.log",
    benchmark:
        "results/benchmarks/sensitivity_tables/sensitivity_tables.tsv"
    localrule: True
    conda:
        "../../envs/coreml-bench.yaml"
    params:
        code=code_fingerprint("sensitivity_tables"),
    script:
        STAGE_SCRIPT


rule search_mixed_precision:
    input:
        unpack(search_inputs),
    output:
        selection="results/mixed_precision/{model}/{experiment}/selection.yaml",
        record="results/mixed_precision/{model}/{experiment}/search.json",
    log:
        "results/logs/search_mixed_precision/{model}/{experiment}.log",
    benchmark:
        "results/benchmarks/search_mixed_precision/{model}/{experiment}.tsv"
    wildcard_constraints:
        experiment=_id_pattern(MIXED_EXPERIMENTS),
    localrule: True
    conda:
        "../../envs/coreml-bench.yaml"
    params:
        code=code_fingerprint("search_mixed_precision"),
        compression=compression_params,
        candidates=candidate_params,
    script:
        STAGE_SCRIPT
