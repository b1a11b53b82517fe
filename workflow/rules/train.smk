rule train_baseline:
    input:
        unpack(init_weights),
    output:
        weights="results/weights/{model}.pth",
        manifest="results/weights/{model}.json",
    log:
        "results/logs/train_baseline/{model}.log",
    benchmark:
        "results/benchmarks/train_baseline/{model}.tsv"
    wildcard_constraints:
        model=TRAINED_MODELS,
    conda:
        "../../envs/coreml-bench.yaml"
    threads: CFG.training_resources.threads
    resources:
        mem_mb=CFG.training_resources.mem_mb,
        gpu=CFG.training_resources.gpu,
    params:
        code=code_fingerprint("train_baseline"),
        model=model_params,
        data=baseline_validation_data,
        training=training_data,
        # Outside the outputs on purpose: a failed or killed job keeps them to resume from.
        checkpoint_dir=lambda wildcards: f"results/checkpoints/{wildcards.model}/baseline",
    script:
        STAGE_SCRIPT
