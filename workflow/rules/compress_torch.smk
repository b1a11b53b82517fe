rule compress_torch:
    input:
        unpack(compression_config),
        weights="results/weights/{model}.pth",
        manifest="results/converted/{model}/fp16.json",
        settings_checked="results/checks/torch_settings/{experiment}.json",
    output:
        package=directory(f"results/compressed/{VARIANT}/model.mlpackage"),
        manifest=f"results/compressed/{VARIANT}/manifest.json",
    log:
        f"results/logs/compress/{VARIANT}.log",
    benchmark:
        f"results/benchmarks/compress/{VARIANT}.tsv"
    wildcard_constraints:
        experiment=_id_pattern(TORCH_EXPERIMENTS),
    conda:
        "../../envs/coreml-bench.yaml"
    threads: CFG.training_resources.threads
    resources:
        mem_mb=CFG.training_resources.mem_mb,
        gpu=CFG.training_resources.gpu,
    params:
        code=code_fingerprint("compress_torch"),
        compression=compression_params,
        recipe=finetune_recipe,
        model=model_params,
        data=torch_job_data,
        training=training_data,
        conversion=CFG.conversion.model_dump(mode="json"),
        # Outside the outputs on purpose: a failed or killed job keeps them to resume from.
        checkpoint_dir=lambda wildcards: f"results/checkpoints/{VARIANT}".format(
            **wildcards
        ),
    script:
        STAGE_SCRIPT
