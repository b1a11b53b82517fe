# The MLflow mirror of the whole study, from the records alone: one local job (compute jobs,
# on whatever node, never write to MLflow), idempotent, closing removed variants' runs.
rule track:
    input:
        unpack(tracking_gate),
        unpack(tracking_sensitivity),
        packages=all_variant_packages(),
        manifests=all_variant_manifests(),
        evaluations=variant_files(f"results/evaluation/{VARIANT}.json"),
        profiles=variant_files(f"results/profile/{VARIANT}.json"),
        summary_csv="results/tables/summary.csv",
        summary_md="results/tables/summary.md",
        plot="results/plots/pareto.png",
        frontier="results/plots/frontier.png",
    output:
        "results/tracking/study.json",
    log:
        "results/logs/track/track.log",
    benchmark:
        "results/benchmarks/track/track.tsv"
    localrule: True
    conda:
        "../../envs/coreml-bench.yaml"
    params:
        code=code_fingerprint("track"),
        variants=tracked_variants(),
        tracking=CFG.tracking.model_dump(mode="json"),
        study=CFG.study,
    script:
        STAGE_SCRIPT
