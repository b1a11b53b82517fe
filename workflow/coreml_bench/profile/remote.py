"""Profiling backend ``remote``: a machine reachable over SSH (a Mac with Core ML, or any host
with the executor).

The transport is plain OpenSSH (``ssh``/``scp``, key authentication, batch mode): copy the
package and this Python package's own source into a fresh run folder on the far side, run
``python -m coreml_bench.profile`` there (the very code the local backends use), read its JSON
result from stdout, remove the run folder. The far side needs Python with coremltools and numpy
(plus torch for its ``host`` backend); it does not need this project installed.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .registry import PROFILERS, LatencyRun, Profiler

if TYPE_CHECKING:
    from .settings import RemoteSettings

log = logging.getLogger(__name__)

# The far side prints exactly one line starting with this, then the JSON result.
RESULT_MARKER = "COREML_BENCH_RESULT "
# The coreml_bench package: its Python sources are what the far side runs.
CODE_DIR = Path(__file__).resolve().parents[1]
TIMEOUT_S = 1800.0


class RemoteError(RuntimeError):
    """The SSH transport or the far side failed; the message names the target and the cause."""


def _destination(remote: RemoteSettings) -> str:
    return f"{remote.user}@{remote.host}" if remote.user else remote.host


def _common_options(remote: RemoteSettings) -> list[str]:
    # BatchMode: never prompt (a job must fail, not hang, when a key is missing).
    options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={remote.connect_timeout_s}"]
    if remote.identity_file:
        key = Path(remote.identity_file).expanduser()
        options += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
    for option in remote.ssh_options:
        options += ["-o", option]
    return options


def _run(command: list[str], what: str, remote: RemoteSettings) -> str:
    log.debug("running %s", shlex.join(command))
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except FileNotFoundError as error:
        raise RemoteError(f"{what}: {command[0]!r} is not installed here ({error})") from None
    except subprocess.TimeoutExpired:
        raise RemoteError(
            f"{what} on {_destination(remote)} timed out after {TIMEOUT_S} s"
        ) from None
    if result.returncode != 0:
        where = f"{_destination(remote)}:{remote.port}"
        raise RemoteError(
            f"{what} on {where} failed (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-2000:]}"
        )
    return result.stdout


def ssh(remote: RemoteSettings, command: str, what: str) -> str:
    """Run one shell command on the far side; its stdout."""
    # "--" ends the options: the destination and command are never read as one.
    argv = ["ssh", "-p", str(remote.port), *_common_options(remote), "--", _destination(remote)]
    return _run([*argv, command], what, remote)


def copy_to(remote: RemoteSettings, sources: list[Path], target: str, what: str) -> None:
    argv = ["scp", "-q", "-r", "-P", str(remote.port), *_common_options(remote), "--"]
    # Quoted for the far side's shell: the legacy scp protocol (OpenSSH < 9.0) expands the
    # target there. The settings allow only safe characters, so this never changes a path.
    destination = f"{_destination(remote)}:{shlex.quote(target)}"
    _run([*argv, *map(str, sources), destination], what, remote)


def _source_tree(dest: Path) -> Path:
    """A copy of this package's Python sources (no bytecode: the far side compiles its own)."""
    import shutil

    target = dest / "coreml_bench"
    shutil.copytree(CODE_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def profile_over_ssh(package: Path, run: LatencyRun) -> dict[str, Any]:
    """Latency figures measured on the far side by its ``remote.backend`` profiler."""
    remote: RemoteSettings = run.remote
    if remote is None:
        raise RemoteError("profiling backend 'remote' needs profiling.remote (host, user, ...)")
    run_dir = f"{remote.workdir.rstrip('/')}/run-{uuid.uuid4().hex[:12]}"
    quoted = shlex.quote(run_dir)
    request = {"package": "model.mlpackage", "backend": remote.backend, "run": run.to_json()}
    ssh(remote, f"mkdir -p {quoted}/src", "creating the run folder")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            request_file = Path(tmp) / "request.json"
            request_file.write_text(json.dumps(request))
            copy_to(remote, [request_file], f"{run_dir}/request.json", "copying the request")
            copy_to(remote, [Path(package)], f"{run_dir}/model.mlpackage", "copying the package")
            sources = _source_tree(Path(tmp))
            copy_to(remote, [sources], f"{run_dir}/src/", "copying the profiler code")
        python = shlex.quote(remote.python)
        stdout = ssh(
            remote,
            f"cd {quoted} && PYTHONPATH=src {python} -m coreml_bench.profile request.json",
            f"profiling with backend {remote.backend!r}",
        )
    finally:
        try:
            ssh(remote, f"rm -rf {quoted}", "removing the run folder")
        except RemoteError as error:
            log.warning("could not clean up %s: %s", run_dir, error)
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if len(lines) != 1:
        raise RemoteError(
            f"the far side printed {len(lines)} result lines; stdout ends: {stdout[-1000:]!r}"
        )
    result = json.loads(lines[0][len(RESULT_MARKER) :])
    result["transport"] = {
        "kind": "ssh",
        "host": remote.host,
        "user": remote.user,
        "port": remote.port,
        "python": remote.python,
        "far_backend": remote.backend,
    }
    return result


PROFILERS.add(
    "remote",
    Profiler(
        profile_over_ssh,
        "the coreml or host profiler run on a machine reached over SSH",
        # The far side does the timing; this job only waits for it.
        times_this_host=False,
    ),
)
