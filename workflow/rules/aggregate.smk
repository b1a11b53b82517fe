# Tables are built in results/aggregate/ and then published to results/tables/ and
# results/plots/: Snakemake removes a job's outputs before it runs, so a failed aggregate
# would otherwise take the last good tables with it.
rule aggregate:
    input:
        manifests=all_variant_manifests(),
        evaluations=variant_files(f"results/evaluation/{VARIANT}.json"),
        profiles=variant_files(f"results/profile/{VARIANT}.json"),
    output:
        csv="results/aggregate/summary.csv",
        markdown="results/aggregate/summary.md",
        plot="results/aggregate/pareto.png",
        frontier="results/aggregate/frontier.png",
    log:
        "results/logs/aggregate/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate/aggregate.tsv"
    localrule: True
    conda:
        "../../envs/coreml-bench.yaml"
    params:
        code=code_fingerprint("aggregate"),
        rows=table_rows(),
    script:
        STAGE_SCRIPT


rule publish_tables:
    input:
        csv="results/aggregate/summary.csv",
        markdown="results/aggregate/summary.md",
        plot="results/aggregate/pareto.png",
        frontier="results/aggregate/frontier.png",
    output:
        csv=report(
            "results/tables/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
        markdown="results/tables/summary.md",
        plot=report(
            "results/plots/pareto.png",
            caption="../report/pareto.rst",
            category="Plots",
        ),
        frontier=report(
            "results/plots/frontier.png",
            caption="../report/frontier.rst",
            category="Plots",
        ),
    log:
        "results/logs/publish_tables/publish_tables.log",
    benchmark:
        "results/benchmarks/publish_tables/publish_tables.tsv"
    localrule: True
    conda:
        "../../envs/coreml-bench.yaml"
    params:
        code=code_fingerprint("publish_tables"),
    script:
        STAGE_SCRIPT
