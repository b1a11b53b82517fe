"""Profiling over SSH against a real OpenSSH server (Debian's openssh-server) on 127.0.0.1.

The test starts its own sshd (own host key, own authorized key, a free port), so the whole
transport is real: ssh/scp with key authentication, the package and the profiler code copied
over, ``python -m coreml_bench.profile`` on the far side, JSON back, run folder removed.
"""

from __future__ import annotations

import getpass
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from coreml_bench.profile import LatencyRun
from coreml_bench.profile.remote import RemoteError, profile_over_ssh
from coreml_bench.profile.settings import ProfilingSettings
from helpers import run_snakemake, write_config

SSHD = Path("/usr/sbin/sshd")
FASHION = Path("/usr/share/datasets/fashion-mnist")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    if not SSHD.exists():
        pytest.fail(f"{SSHD} missing: `bash envs/install.sh` installs openssh-server")
    root = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True
        )
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    port = _free_port()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        # pytest's temp folders are not owned the way StrictModes wants.
        "StrictModes no\nPermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\n"  # scp (OpenSSH ≥ 9) speaks SFTP
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    server = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(root / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "sshd.log", "w"),  # noqa: SIM115 - closed with the process
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"sshd exited: {(root / 'sshd.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    remote = {
        "host": "127.0.0.1",
        "user": getpass.getuser(),
        "port": port,
        "identity_file": str(root / "client_key"),
        "python": sys.executable,
        "backend": "host",
        "workdir": str(root / "far-side"),
        "ssh_options": ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"],
        "connect_timeout_s": 10,
    }
    try:
        yield remote
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def package(fashion_package: Path) -> Path:
    return fashion_package


def _profiling(remote: dict, **changes: object) -> LatencyRun:
    cfg = {"runs": 5, "warmup": 1, "threads": 1, "device": "cpu", "compute_units": ["ALL"]}
    settings = {**cfg, "backend": "remote", "remote": {**remote, **changes}}
    return ProfilingSettings.model_validate(settings).latency_run()


def test_profile_over_ssh_runs_the_host_profiler_on_the_far_side(sshd: dict, package: Path) -> None:
    result = profile_over_ssh(package, _profiling(sshd))
    assert result["backend"] == "host"
    assert result["device"].startswith("host CPU")
    assert result["latency_median_ms"] > 0 and result["first_prediction_ms"] > 0
    assert result["transport"] == {
        "kind": "ssh", "host": "127.0.0.1", "user": sshd["user"], "port": sshd["port"],
        "python": sys.executable, "far_backend": "host",
    }  # fmt: skip
    assert not any(Path(sshd["workdir"]).iterdir())  # the run folder is gone


def test_the_far_sides_macos_boundary_comes_back_named(sshd: dict, package: Path) -> None:
    """Asking this Linux 'Mac' for Core ML fails there, and the error says why."""
    with pytest.raises(RemoteError, match="needs darwin"):
        profile_over_ssh(package, _profiling(sshd, backend="coreml"))
    assert not any(Path(sshd["workdir"]).iterdir())


def test_unreachable_or_refused_targets_are_named(sshd: dict, package: Path) -> None:
    closed = _free_port()  # nothing listens there
    with pytest.raises(RemoteError, match=rf"on {sshd['user']}@127\.0\.0\.1:{closed} failed"):
        profile_over_ssh(package, _profiling(sshd, port=closed))
    other_key = Path(sshd["identity_file"]).with_name("host_key")  # not authorized
    with pytest.raises(RemoteError, match="Permission denied"):
        profile_over_ssh(package, _profiling(sshd, identity_file=str(other_key)))


def test_workflow_profiles_over_ssh(sshd: dict, tmp_path: Path) -> None:
    config = {
        "study": "remote",
        "models": [
            {"id": "cnn", "architecture": "fashion_cnn", "num_classes": 10,
             "source": {"kind": "random"}},
        ],
        "experiments": [{"id": "fp16", "compression": {"algorithm": "none"}}],
        "data": {"evaluation": {"kind": "fashion_mnist", "root": str(FASHION)}, "limit": 32},
        "profiling": {"backend": "remote", "runs": 5, "warmup": 1, "remote": sshd},
        "tracking": {"enabled": False},
    }  # fmt: skip
    write_config(tmp_path, config)
    run_snakemake(tmp_path)
    record = json.loads((tmp_path / "results/profile/cnn/fp16/trial1.json").read_text())
    assert record["backend"] == "remote"
    assert record["latency"]["transport"]["far_backend"] == "host"
    assert record["latency"]["runs"] == 5 and record["latency"]["warmup"] == 1
    table = (tmp_path / "results/tables/summary.csv").read_text()
    assert "remote (host CPU" in table and "median of N=5 after 1 warm-up" in table
