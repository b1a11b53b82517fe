"""``coreml-bench``: small helpers around the workflow (config generation and checks).

The config package loads $COREML_BENCH_PLUGINS first, so plugin entries are accepted."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import ConfigError, WorkflowConfig, check_local_paths, load_config
from .config.generate import config_readme, default_config_yaml, json_schema_text
from .io import write_text_atomic

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_NAME = "config.schema.json"


def _write_config(args: argparse.Namespace) -> int:
    config_dir, schema_dir = Path(args.config_dir), Path(args.schema_dir)
    written = {
        config_dir / "config.yaml": default_config_yaml(),
        config_dir / "README.md": config_readme(),
        schema_dir / SCHEMA_NAME: json_schema_text(),
    }
    for path, text in written.items():
        write_text_atomic(path, text)
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(Path(args.path))
        missing = check_local_paths(cfg, planning_only=args.without_data)
    except ConfigError as error:
        message = str(error)
        print(
            message if message.startswith(args.path) else f"{args.path}: {message}", file=sys.stderr
        )
        return 1
    print(f"{args.path}: ok ({len(cfg.variants())} model × experiment × trial jobs)")
    if missing:
        print("not on disk here (a real run stops on them):\n" + "\n".join(missing))
    published = [e.id for e in cfg.experiments if e.published_config()]
    if published:
        print(
            f"{len(published)} experiment(s) read a coremltools config by URL "
            f"({', '.join(published[:3])}{', ...' if len(published) > 3 else ''}): coremltools "
            "checks each once rule download_compression_config has fetched it"
        )
    reference = cfg.reference_params()
    if reference is not None:
        declared = {(d["model"], d["config"], d["workflow"]) for d in reference["declared"]}
        from .reference import load_published

        rows = [
            r
            for r in load_published(Path(reference["published"]))
            if r.model in reference["models"]
        ]
        matched = sum(r.key() in declared for r in rows)
        print(
            f"reference gate: {matched} of {len(rows)} published rows of "
            f"{', '.join(reference['models'])} are declared (`snakemake check` judges them)"
        )
    for line in _dense_weights(cfg):
        print(line)
    return 0


def _dense_weights(cfg: WorkflowConfig) -> list[str]:
    """Where coremltools will leave weights dense, per model and experiment (an estimate)."""
    from .compress.coverage import estimate_dense, weight_shapes

    lines = []
    for model in cfg.models:
        shapes = None
        for experiment in cfg.experiments:
            if not experiment.applies_to(model.id) or experiment.algorithm().kind != "coreml":
                continue
            if shapes is None:
                shapes = weight_shapes(model.architecture, model.spec().num_classes)
            estimate = estimate_dense(experiment.compression, shapes)
            if estimate is not None and estimate.dense:
                lines.append(f"  {model.id} / {experiment.id}: {estimate.summary()} (estimate)")
    if lines:
        lines.insert(0, "weights coremltools will leave dense (they lower the ratio):")
    return lines


def _verify(args: argparse.Namespace) -> int:
    from .integrity import verify_results

    report = verify_results(Path(args.results))
    print(report.summary(), file=sys.stderr if report.problems else sys.stdout)
    return 1 if report.problems else 0


def _stale(args: argparse.Namespace) -> int:
    from .stale import find_stale, rerun

    results = Path(args.results)
    stale = find_stale(results)
    for record in stale:
        print(record.line())
    if not stale:
        print(f"up to date: every record under {results} was made by today's code and environment")
        return 0
    print(f"{len(stale)} stale result(s)", file=sys.stderr)
    if args.rerun:
        return rerun(stale, results, args.snakemake_args)
    print("rerun exactly these: coreml-bench stale --rerun [-- snakemake options]", file=sys.stderr)
    return 1


def _export(args: argparse.Namespace) -> int:
    from .executor import UnsupportedOpError
    from .executor.export import export_package

    try:
        output = export_package(
            Path(args.package), args.to, Path(args.output) if args.output else None
        )
    except UnsupportedOpError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"wrote {output} ({args.to})")
    return 0


def _make_imagenet_sample(args: argparse.Namespace) -> int:
    from .data.imagenet import foolbox_imagenet_sample, write_imagenet_folder

    count = write_imagenet_folder(foolbox_imagenet_sample(), Path(args.dest))
    print(f"wrote {count} foolbox ImageNet images to {args.dest}/<wnid>/ (kind imagenet_folder)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coreml-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser(
        "write-config",
        help="regenerate config/config.yaml, config/README.md and the JSON schema",
    )
    write.add_argument("--config-dir", default=str(ROOT / "config"))
    write.add_argument("--schema-dir", default=str(ROOT / "workflow" / "schemas"))
    write.set_defaults(func=_write_config)
    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("path")
    check.add_argument(
        "--without-data",
        action="store_true",
        help="list missing data paths instead of failing on them (as `snakemake -n` does)",
    )
    check.set_defaults(func=_check_config)
    verify = sub.add_parser(
        "verify", help="check every package and record under results/ against its digest"
    )
    verify.add_argument("results", nargs="?", default="results")
    verify.set_defaults(func=_verify)
    stale = sub.add_parser(
        "stale",
        help="list the results made with other code or another environment than today's "
        "(exit 1 if any); --rerun reruns exactly those",
    )
    stale.add_argument("results", nargs="?", default="results")
    stale.add_argument(
        "--rerun",
        action="store_true",
        help="run `snakemake --forcerun <stale records>` with the options after `--`",
    )
    stale.set_defaults(func=_stale)
    export = sub.add_parser(
        "export",
        help="turn an .mlpackage into a torch program: the compiled plan, a torch.export "
        ".pt2, ONNX, or the graph's Python code (computes what the executor computes)",
    )
    export.add_argument("package")
    export.add_argument("--to", choices=("plan", "pt2", "onnx", "code"), default="pt2")
    export.add_argument(
        "--output", "-o", help="where to write (default: beside the package, e.g. model.pt2)"
    )
    export.set_defaults(func=_export)
    sample = sub.add_parser(
        "make-imagenet-sample",
        help="write the 20 foolbox ImageNet images as an ImageNet-layout folder (<wnid>/*.jpg)",
    )
    sample.add_argument("dest", nargs="?", default="results/data/imagenet-sample")
    sample.set_defaults(func=_make_imagenet_sample)
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` is snakemake's (stale --rerun), never ours.
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.snakemake_args = argv[split + 1 :]
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
