# The reference gate: the published figures beside this run's (report), then the verdict
# (check) as its own rule, so a failing gate keeps the report it failed on.
rule reference_report:
    input:
        manifests=all_variant_manifests(),
        evaluations=variant_files(f"results/evaluation/{VARIANT}.json"),
        profiles=variant_files(f"results/profile/{VARIANT}.json"),
        published=str(CFG.reference.published_path()),
    output:
        csv=report(
            "results/reference/gate.csv",
            caption="../report/reference.rst",
            category="Reference gate",
        ),
        markdown=report(
            "results/reference/gate.md",
            caption="../report/reference.rst",
            category="Reference gate",
        ),
    log:
        "results/logs/reference_report/reference_report.log",
    benchmark:
        "results/benchmarks/reference_report/reference_report.tsv"
    localrule: True
    conda:
        "../../envs/coreml-bench.yaml"
    params:
        code=code_fingerprint("reference_report"),
        rows=table_rows(),
        reference=REFERENCE,
        study=CFG.study,
    script:
        STAGE_SCRIPT


# `snakemake check`: fails, naming every row, unless each published row passed (or failed
# as documented).
rule check:
    input:
        csv="results/reference/gate.csv",
    output:
        "results/reference/gate.passed.json",
    log:
        "results/logs/check/check.log",
    benchmark:
        "results/benchmarks/check/check.tsv"
    localrule: True
    conda:
        "../../envs/coreml-bench.yaml"
    params:
        code=code_fingerprint("check"),
    script:
        STAGE_SCRIPT
