"""The package's shape, checked: stages never import the config, and reading the Snakefile
imports no torch, coremltools or mlflow (every cluster node re-reads it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "workflow" / "coreml_bench"
# Modules allowed to import the config package: the config itself and the command line.
CONFIG_USERS = {"cli.py"}
HEAVY = ("torch", "torchvision", "coremltools", "mlflow", "timm", "matplotlib", "pandas")


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of the package modules ``path`` imports (relative imports resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                names.add(".".join([*base, *([node.module] if node.module else [])]))
            elif node.module:
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_stage_module_imports_the_config_package() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "config" or str(relative) in CONFIG_USERS:
            continue
        if any(
            n == "coreml_bench.config" or n.startswith("coreml_bench.config.")
            for n in _imported_modules(path)
        ):
            offenders.append(str(relative))
    assert offenders == []


def _top_level_imports(snakefile: Path, cwd: Path, *args: str) -> set[str]:
    command = [sys.executable, "-X", "importtime", "-m", "snakemake", "-n", "--quiet"]
    command += ["--cores", "1", "--snakefile", str(snakefile), *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }


def test_reading_the_snakefile_imports_no_heavy_library(tmp_path: Path) -> None:
    # The torch-side study: its settings were checked by coremltools at parse time before.
    imported = _top_level_imports(
        ROOT / "Snakefile", ROOT, "--configfile", "config/fashion-mnist.yaml"
    )
    # Snakemake itself loads every installed executor plugin (the SLURM plugin imports
    # pandas): what a one-rule Snakefile imports is not ours.
    (tmp_path / "Snakefile").write_text('rule all:\n    output: "x"\n    shell: "touch x"\n')
    snakemake_own = _top_level_imports(tmp_path / "Snakefile", tmp_path)
    assert "coreml_bench" in imported
    assert sorted((imported - snakemake_own) & set(HEAVY)) == []
