"""Shared test helpers: repository paths, a runner for real snakemake invocations, a local
HTTP server. (Fixtures are in conftest.py.)"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# The small study several modules run (tests/test_workflow.py, tests/cluster): one model,
# four post-training experiments, four evaluation images. conftest's small_study_run runs it.
SMALL_CONFIG = {
    "study": "itest",
    "models": [
        {
            "id": "mnv3s",
            "architecture": "mobilenet_v3_small",
            "source": {"kind": "random", "seed": 0},
        }
    ],
    "experiments": [
        {"id": "fp16", "compression": {"algorithm": "none"}},
        {"id": "kmeans", "compression": {"algorithm": "palettize_kmeans", "n_bits": 2}},
        {"id": "int8", "compression": {"algorithm": "quantize_linear", "dtype": "int8"}},
        {"id": "prune", "compression": {"algorithm": "prune_magnitude", "target_sparsity": 0.5}},
    ],
    "data": {"limit": 4, "batch_size": 4},
    "profiling": {"runs": 3, "warmup": 1},
}

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake_command(
    workdir: Path, *args: str, configfile: Path | None = None, snakefile: Path | None = None
) -> list[str]:
    """``snakemake`` on this repo's Snakefile (or ``snakefile``) in ``workdir``, with its
    config.yaml (or ``configfile``), then ``args``."""
    return [
        SNAKEMAKE,
        "--snakefile", str(snakefile or ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(configfile or workdir / "config.yaml"),
        *args,
    ]  # fmt: skip


def run_snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    timeout: float = 1200,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real workflow (this repo's Snakefile) in ``workdir``; ``env`` adds variables."""
    env = {**os.environ, **(env or {})}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = snakemake_command(workdir, "--cores", "2", *args)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n"
            f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
        )
    return result


def dry_run_jobs(
    workdir: Path, config: dict, snakefile: Path | None = None
) -> dict[str, int]:
    """The jobs ``snakemake -n`` would run in ``workdir`` with ``config``: {rule: count}.

    The config goes to its own file (the run's own config.yaml stays as it is), and
    ``snakefile`` may be an edited copy of the workflow.
    """
    path = workdir / "dry-run.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = snakemake_command(
        workdir, "--cores", "2", "--dry-run", configfile=path, snakefile=snakefile
    )
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"snakemake -n failed ({result.returncode}):\n{output[-6000:]}")
    if "Nothing to be done" in output:
        return {}
    lines = output.split("Job stats:", 1)[1].splitlines()
    jobs: dict[str, int] = {}
    for line in lines[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def write_config(workdir: Path, config: dict) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    # The Snakefile's `configfile:` is relative to the working directory.
    (workdir / "config").mkdir(exist_ok=True)
    shutil.copy(path, workdir / "config" / "config.yaml")
    return path


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean


@contextlib.contextmanager
def serve_directory(
    root: Path, handler: type[http.server.SimpleHTTPRequestHandler] = QuietHandler
) -> Iterator[str]:
    """A real ThreadingHTTPServer on 127.0.0.1:<free port> serving ``root``; yields its URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    # A short poll interval keeps shutdown() from costing 0.5 s per test.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def zip_package(package: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Zip a package the way Finder does: the .mlpackage folder at the top, plus junk."""
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(package.rglob("*")):
            if path.is_file():
                bundle.write(path, f"{package.name}/{path.relative_to(package)}")
        bundle.writestr("__MACOSX/._FashionCNN.mlpackage", b"finder metadata")
        for name, data in (extra or {}).items():
            bundle.writestr(name, data)
    return archive
