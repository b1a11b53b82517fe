"""``coreml-bench``: small helpers around the workflow (config generation and checks)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import ConfigError, load_config
from .config.generate import default_config_yaml, json_schema_text

ROOT = Path(__file__).resolve().parents[2]


def _write_config(args: argparse.Namespace) -> int:
    out = Path(args.config_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(default_config_yaml())
    (out / "schema.json").write_text(json_schema_text())
    print(f"wrote {out / 'config.yaml'} and {out / 'schema.json'}")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(Path(args.path))
    except ConfigError as error:
        print(f"{args.path}: {error}", file=sys.stderr)
        return 1
    print(f"{args.path}: ok ({len(cfg.variants())} model × experiment × trial jobs)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coreml-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write-config", help="regenerate config/config.yaml and schema.json")
    write.add_argument("--config-dir", default=str(ROOT / "config"))
    write.set_defaults(func=_write_config)
    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("path")
    check.set_defaults(func=_check_config)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
