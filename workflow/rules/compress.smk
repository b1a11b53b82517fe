rule compress:
    input:
        package="results/converted/{model}/fp16.mlpackage",
        manifest="results/converted/{model}/fp16.json",
    output:
        package=directory(f"results/compressed/{VARIANT}/model.mlpackage"),
        manifest=f"results/compressed/{VARIANT}/manifest.json",
    params:
        compression=compression_params,
    wildcard_constraints:
        experiment="|".join(re.escape(e) for e in COMPRESSED_EXPERIMENTS) or "^$",
    resources:
        mem_mb=4000,
    log:
        f"results/logs/compress/{VARIANT}.log",
    benchmark:
        f"results/benchmarks/compress/{VARIANT}.tsv"
    conda:
        "../../envs/coreml-bench.yaml"
    script:
        "../scripts/compress.py"
