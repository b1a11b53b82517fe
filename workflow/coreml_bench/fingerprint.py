"""Fingerprints of the code and the environment each stage runs with.

Snakemake's ``code`` trigger hashes a rule's script, which here is the one-line
``workflow/scripts/run_stage.py``: on its own it never sees an edit of the stage logic. So each
rule's params carry :func:`code_fingerprint` of its stage — the sha256 of every file of this
package the stage's job function can import (followed statically through ``import``
statements, including the lazy ones inside functions, and the ``__init__`` of every package on
the way) — and an edit reruns exactly the jobs whose code it touches.

The environment is recorded, not a trigger: :func:`environment` lists the versions of the
distributions the stage's code imports (plus Python), and every record carries it with its
digest. A dependency bump therefore never silently reruns a week of fine-tuning; `coreml-bench
stale` lists the results made with other code or another environment than today's, and
`coreml-bench stale --rerun` reruns exactly those.

Everything here reads source text only (no import of the stage modules, nothing heavy): it runs
at every Snakefile parse, on every cluster node.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import platform
import re
import sys
from contextvars import ContextVar
from importlib import metadata
from pathlib import Path
from typing import Any

from .provenance import git_commit

PACKAGE = "coreml_bench"
PACKAGE_DIR = Path(__file__).resolve().parent
# The one script every rule runs, and the adapter that dispatches to the stages.
JOBS_MODULE = f"{PACKAGE}.jobs"
STAGE_SCRIPT = PACKAGE_DIR.parent / "scripts" / "run_stage.py"

# Import names whose distribution has another name.
DISTRIBUTION_OF = {"PIL": "pillow", "yaml": "PyYAML", "sklearn": "scikit-learn"}

_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<source>\.+[\w.]*|[\w.]+)[ \t]+import[ \t]+"
    r"(?P<names>\([^)]*\)|[^\n#]+)|import[ \t]+(?P<modules>[^\n#]+))",
    re.MULTILINE,
)


@functools.cache
def _module_file(module: str) -> Path | None:
    """This package's file for a dotted module name (None outside the package)."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    parts = module.split(".")[1:]
    base = PACKAGE_DIR.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE_DIR).with_suffix("")
    parts = [PACKAGE, *relative.parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(source: str, importer: str, is_package: bool) -> str:
    """The absolute name of ``from <source> import`` written in module ``importer``."""
    if not source.startswith("."):
        return source
    dots = len(source) - len(source.lstrip("."))
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (dots - 1)] if dots > 1 else base
    rest = source[dots:]
    return ".".join([*base, rest] if rest else base)


@functools.cache
def _imports(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    """(package modules, third-party top-level names) that one file imports, anywhere in it."""
    text = path.read_text()
    importer = _module_name(path)
    is_package = path.name == "__init__.py"
    own: set[str] = set()
    external: set[str] = set()
    for match in _IMPORT.finditer(text):
        if match.group("modules"):
            for item in match.group("modules").split(","):
                name = item.split(" as ")[0].strip()
                if name:
                    (own if name.split(".")[0] == PACKAGE else external).add(name)
            continue
        module = _resolve(match.group("source"), importer, is_package)
        if module.split(".")[0] != PACKAGE:
            external.add(module)
            continue
        own.add(module)
        names = match.group("names").strip("() \n")
        for item in names.split(","):
            name = item.split(" as ")[0].strip()
            # `from .pkg import submodule` imports the submodule too.
            if name and name != "*" and _module_file(f"{module}.{name}") is not None:
                own.add(f"{module}.{name}")
    top_level = {name.split(".")[0] for name in external}
    return frozenset(own), frozenset(top_level - set(sys.stdlib_module_names) - {"__future__"})


def _with_parents(module: str) -> list[str]:
    # Importing a.b.c runs a/__init__ and a/b/__init__ first.
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@functools.cache
def closure(roots: tuple[str, ...]) -> tuple[tuple[Path, ...], frozenset[str]]:
    """Every package file that importing ``roots`` can load, and the third-party names."""
    seen: set[Path] = set()
    external: set[str] = set()
    pending = [m for root in roots for m in _with_parents(root)]
    while pending:
        module = pending.pop()
        path = _module_file(module)
        if path is None or path in seen:
            continue
        seen.add(path)
        own, third_party = _imports(path)
        external |= third_party
        for name in own:
            pending.extend(_with_parents(name))
    return tuple(sorted(seen)), frozenset(external)


@functools.cache
def stage_roots() -> dict[str, tuple[str, ...]]:
    """For each rule in ``jobs.STAGES``: the modules its job function uses.

    Read from jobs.py's source: the names the job function (and the jobs.py helpers it calls)
    uses, mapped through jobs.py's imports, plus what it imports lazily.
    """
    path = _module_file(JOBS_MODULE)
    assert path is not None
    tree = ast.parse(path.read_text())
    imported: dict[str, str] = {}
    functions: dict[str, ast.FunctionDef] = {}
    stages: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            module = _resolve("." * node.level + node.module, JOBS_MODULE, False)
            for alias in node.names:
                name = alias.asname or alias.name
                submodule = f"{module}.{alias.name}"
                imported[name] = submodule if _module_file(submodule) else module
        elif isinstance(node, ast.FunctionDef):
            functions[node.name] = node
        elif isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(node.value, ast.Dict):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name) and target.id == "STAGES":
                for key, value in zip(node.value.keys, node.value.values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(value, ast.Name):
                        stages[str(key.value)] = value.id

    def uses(name: str, visited: set[str]) -> set[str]:
        visited.add(name)
        modules: set[str] = set()
        for node in ast.walk(functions[name]):
            if isinstance(node, ast.Name):
                if node.id in imported:
                    modules.add(imported[node.id])
                elif node.id in functions and node.id not in visited:
                    modules |= uses(node.id, visited)
            elif isinstance(node, ast.ImportFrom) and node.module is not None:
                module = _resolve("." * node.level + node.module, JOBS_MODULE, False)
                modules.add(module)
                modules |= {
                    f"{module}.{a.name}" for a in node.names if _module_file(f"{module}.{a.name}")
                }
        return modules

    # run() itself (logging, plugins) is part of every stage.
    common = uses("run", set())
    return {
        rule: tuple(sorted(common | uses(function, set())))
        for rule, function in stages.items()
    }


def _with_adapter(files: tuple[Path, ...]) -> tuple[Path, ...]:
    # jobs.py itself (not all it imports: that is every stage) and the rules' one script.
    jobs = _module_file(JOBS_MODULE)
    assert jobs is not None
    return (*sorted({*files, jobs}), STAGE_SCRIPT)


@functools.cache
def _file_digest(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def _digest(files: tuple[Path, ...]) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(str(path.relative_to(PACKAGE_DIR.parent)).encode() + b"\0")
        h.update(_file_digest(path))
    return h.hexdigest()


@functools.cache
def code_fingerprint(rule: str) -> str:
    """sha256 of the source of everything rule ``rule``'s stage can run (and its script)."""
    roots = stage_roots()
    if rule not in roots:
        raise KeyError(f"rule {rule!r} has no stage in coreml_bench.jobs; known: {sorted(roots)}")
    files, _ = closure(roots[rule])
    return _digest(_with_adapter(files))


@functools.cache
def environment(rule: str) -> dict[str, str]:
    """Python's version and that of each distribution the stage's code imports."""
    _, external = closure(stage_roots()[rule])
    versions = {"python": platform.python_version()}
    for name in sorted(external):
        distribution = DISTRIBUTION_OF.get(name, name)
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = "not installed"
    return versions


def environment_fingerprint(rule: str) -> str:
    text = "\n".join(f"{k}=={v}" for k, v in sorted(environment(rule).items()))
    return hashlib.sha256(text.encode()).hexdigest()


def provenance(rule: str) -> dict[str, Any]:
    """What every record says about the code and environment that made it."""
    return {
        "stage": rule,
        "code_fingerprint": code_fingerprint(rule),
        "environment_fingerprint": environment_fingerprint(rule),
        "environment": environment(rule),
        "git_commit": git_commit(),
    }


# The rule of the running job (set by coreml_bench.jobs.run): a stage shared by two rules
# (compress / compress_torch) records the one that ran it.
CURRENT_RULE: ContextVar[str | None] = ContextVar("coreml_bench_rule", default=None)


def record_provenance(default_rule: str) -> dict[str, Any]:
    """:func:`provenance` of the running job's rule; ``default_rule`` outside a job."""
    return provenance(CURRENT_RULE.get() or default_rule)
