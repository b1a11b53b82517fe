"""A real single-node SLURM cluster on 127.0.0.1 for tests (Debian's slurmctld/slurmd/munge).

``local_slurm()`` writes /etc/slurm/slurm.conf (the job-step executor plugin drops a custom
SLURM_CONF, so the default path is the only one that works end to end), backs up and restores
any conf already there, starts its own munged (private socket), slurmctld and
``slurmd -N localhost`` in the foreground with state, spool and logs in a temporary folder,
waits until ``sinfo`` shows the node idle, and on exit cancels what is left in the queue,
stops exactly the daemons it started (by PID) and puts the conf back. Nothing is enabled or
started system-wide. Accounting is off: job status comes from ``squeue`` (MinJobAge is long
enough for that), never from ``sacct``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
# Where an existing conf waits while the test cluster runs (beside it: survives a killed run).
BACKUP = SLURM_CONF.with_name("slurm.conf.before-coreml-bench-test")
MUNGE_KEY = Path("/etc/munge/munge.key")
MARKER = "# Written by coreml-bench tests/cluster/slurm.py for a test cluster on 127.0.0.1."
NODE = "localhost"
PARTITION = "test"
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")
DECLARED_MEM_MB = 65536


class SlurmError(RuntimeError):
    """The test cluster did not come up (the message carries the daemons' logs)."""


def unavailable() -> str | None:
    """Why a test cluster cannot start here (missing binaries, not root); None if it can."""
    missing = [name for name in BINARIES if shutil.which(name, path=_sbin_path()) is None]
    if missing:
        return (
            f"SLURM not installed (missing {', '.join(missing)}): `bash envs/install.sh` "
            "installs slurmctld slurmd slurm-client munge"
        )
    if os.geteuid() != 0:
        return "a test SLURM cluster needs root (it writes /etc/slurm/slurm.conf)"
    return None


@dataclass
class Cluster:
    """A running test cluster: its partition, node, CPUs and memory, and its daemons."""

    root: Path
    partition: str
    node: str
    cpus: int
    mem_mb: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def log(self, name: str) -> Path:
        return self.root / "log" / f"{name}.log"

    def logs(self, tail: int = 4000) -> str:
        """The end of every daemon log (for error messages)."""
        parts = []
        for path in sorted((self.root / "log").glob("*.log")):
            text = path.read_text(errors="replace")
            parts.append(f"--- {path.name} ---\n{text[-tail:]}")
        return "\n".join(parts) or "(no daemon logs)"

    def running(self) -> dict[str, int]:
        """PIDs of the started daemons still running."""
        return {name: p.pid for name, p in self.processes.items() if p.poll() is None}


def _sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _which(name: str) -> str:
    path = shutil.which(name, path=_sbin_path())
    if path is None:
        raise SlurmError(f"{name} not found")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _running_daemons() -> dict[int, str]:
    """slurmctld/slurmd processes already running on this machine (pid → name)."""
    found = {}
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            name = comm.read_text().strip()
            if name in ("slurmctld", "slurmd"):
                found[int(comm.parent.name)] = name
    return found


def _mem_mb() -> int:
    """Memory the node declares: what the machine has, and at least DECLARED_MEM_MB, so that
    a real profile's requests (8 GB jobs, 64 GB training) are accepted as written on a small
    machine. Memory is not a consumable here (CR_Core) and nothing enforces it (no cgroups);
    config_overrides keeps slurmd from draining a node that has less than it declares."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return max(int(line.split()[1]) // 1024, DECLARED_MEM_MB)
    raise SlurmError("no MemTotal in /proc/meminfo")


def _ensure_munge_key() -> pwd.struct_passwd:
    """The key munged reads (created, as the package's postinst would, when missing); returns
    its owner, the user munged must run as (it refuses a key owned by anybody else)."""
    if not MUNGE_KEY.exists():
        MUNGE_KEY.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        mungekey = shutil.which("mungekey", path=_sbin_path())
        if mungekey:
            subprocess.run(
                [mungekey, "--create", f"--keyfile={MUNGE_KEY}"], check=True, capture_output=True
            )
        else:
            MUNGE_KEY.write_bytes(os.urandom(1024))
        MUNGE_KEY.chmod(0o600)
        with contextlib.suppress(KeyError):
            munge = pwd.getpwnam("munge")
            os.chown(MUNGE_KEY.parent, munge.pw_uid, munge.pw_gid)
            os.chown(MUNGE_KEY, munge.pw_uid, munge.pw_gid)
    return pwd.getpwuid(MUNGE_KEY.stat().st_uid)


def slurm_conf(root: Path, cpus: int, mem_mb: int, ctld_port: int, slurmd_port: int) -> str:
    """One node (``localhost`` = 127.0.0.1), one default partition, accounting off."""
    return f"""{MARKER}
# The original conf, if there was one, is {BACKUP} until the test cluster stops.
ClusterName=coremlbenchtest
SlurmctldHost={socket.gethostname().split(".")[0]}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root / "munge" / "munge.socket.2"}
CredType=cred/munge
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in containers: track job processes by /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
# Cores are consumable, memory is not (see _mem_mb); the node is taken as declared.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
ReturnToService=2
# Accounting off: sacct has no database here, job states come from squeue, which keeps a
# finished job for MinJobAge seconds (the executor plugin wants it ≥ 3× its first check).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""


def _install_conf(text: str) -> None:
    """Write the test conf; an existing conf that is not one of ours is kept in BACKUP."""
    SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    if SLURM_CONF.is_symlink() or SLURM_CONF.exists():
        ours = SLURM_CONF.is_file() and SLURM_CONF.read_text(errors="replace").startswith(MARKER)
        # A conf of ours is a killed run's leftover: BACKUP (if any) still holds the original.
        if not ours:
            os.replace(SLURM_CONF, BACKUP)
    tmp = SLURM_CONF.with_name(".slurm.conf.tmp")
    tmp.write_text(text)
    os.replace(tmp, SLURM_CONF)


def _restore_conf() -> None:
    if BACKUP.is_symlink() or BACKUP.exists():
        os.replace(BACKUP, SLURM_CONF)
    elif SLURM_CONF.is_file() and SLURM_CONF.read_text(errors="replace").startswith(MARKER):
        SLURM_CONF.unlink()


def _start(cluster: Cluster, name: str, cmd: list[str], user: str | None = None) -> None:
    log = open(cluster.log(f"{name}.stdout"), "w")  # noqa: SIM115 - closed below
    try:
        cluster.processes[name] = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cluster.root,
            user=user,
            start_new_session=True,  # a Ctrl-C of pytest does not reach it; we stop it
        )
    finally:
        log.close()


def _stop(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def _wait_for(
    cluster: Cluster, what: str, ready: Callable[[], object], timeout: float, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for name, process in cluster.processes.items():
            if process.poll() is not None:
                raise SlurmError(
                    f"{name} exited ({process.returncode}) while waiting for {what}:\n"
                    f"{cluster.logs()}"
                )
        try:
            last = ready()
            if last is True:
                return
        except (OSError, subprocess.SubprocessError) as error:
            last = error
        time.sleep(interval)
    raise SlurmError(
        f"timed out after {timeout:.0f} s waiting for {what} ({last!r}):\n{cluster.logs()}"
    )


def _query(*cmd: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return subprocess.run(
        [_which(cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=timeout, env=env
    )


def queue() -> list[str]:
    """Ids of the jobs in the test cluster's queue (pending, running, completing)."""
    result = _query("squeue", "-h", "-o", "%i")
    if result.returncode != 0:
        raise SlurmError(f"squeue failed: {result.stderr}")
    return result.stdout.split()


def _cancel_all(cluster: Cluster, timeout: float = 30) -> None:
    """scancel whatever is still queued or running, and wait until the queue is empty (so
    no slurmstepd outlives its slurmd)."""
    if "slurmctld" not in cluster.running():
        return
    with contextlib.suppress(SlurmError, OSError, subprocess.SubprocessError):
        if not queue():
            return
        _query("scancel", f"--partition={cluster.partition}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and queue():
            time.sleep(0.5)


@contextlib.contextmanager
def local_slurm(start_timeout: float = 60, keep_root: bool = False) -> Iterator[Cluster]:
    """Run a one-node SLURM cluster for the duration of the ``with`` block (see module doc)."""
    reason = unavailable()
    if reason:
        raise SlurmError(reason)
    already = _running_daemons()
    if already:
        raise SlurmError(
            f"SLURM daemons already run here ({already}); a test cluster would replace "
            f"their {SLURM_CONF}: stop them first"
        )
    # Not under pytest's tmp_path: munged (as the key's owner) must traverse every parent.
    root = Path(tempfile.mkdtemp(prefix="coreml-bench-slurm-"))
    root.chmod(0o755)
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir()
    cpus = os.cpu_count() or 1
    cluster = Cluster(root=root, partition=PARTITION, node=NODE, cpus=cpus, mem_mb=_mem_mb())
    conf_installed = False
    try:
        key_owner = _ensure_munge_key()
        munge_dir = root / "munge"
        munge_dir.mkdir(mode=0o711)  # munged: owned by it, others may only traverse
        os.chown(munge_dir, key_owner.pw_uid, key_owner.pw_gid)
        munge_dir.chmod(0o711)
        socket_path = munge_dir / "munge.socket.2"
        # In the foreground munged logs to stderr (munged.stdout.log).
        _start(cluster, "munged", [
            _which("munged"), "--foreground", f"--socket={socket_path}",
            f"--pid-file={munge_dir / 'munged.pid'}", f"--seed-file={munge_dir / 'munged.seed'}",
        ], user=key_owner.pw_name if key_owner.pw_uid != os.geteuid() else None)  # fmt: skip
        _wait_for(cluster, "munged's socket", socket_path.exists, start_timeout)

        ctld_port = _free_port()
        slurmd_port = _free_port()
        while slurmd_port == ctld_port:
            slurmd_port = _free_port()
        text = slurm_conf(root, cpus, cluster.mem_mb, ctld_port, slurmd_port)
        conf_installed = True  # from here on, the exit puts the original back
        _install_conf(text)
        (root / "slurm.conf").write_text(text)  # a copy beside the logs

        _start(cluster, "slurmctld", [_which("slurmctld"), "-D", "-c"])
        _wait_for(cluster, "slurmctld", lambda: _query("sinfo", "-h").returncode == 0,
                  start_timeout)  # fmt: skip
        _start(cluster, "slurmd", [_which("slurmd"), "-D", "-N", NODE])

        def node_idle() -> bool | str:
            state = _query("sinfo", "-h", "-N", "-n", NODE, "-o", "%t").stdout.strip()
            return state == "idle" or state

        _wait_for(cluster, f"node {NODE} idle in sinfo", node_idle, start_timeout)
        yield cluster
    finally:
        try:
            _cancel_all(cluster)
        finally:
            # Reverse order of start: slurmd, slurmctld, munged.
            for name in reversed(list(cluster.processes)):
                _stop(cluster.processes[name])
            if conf_installed:
                _restore_conf()
            if not keep_root:
                shutil.rmtree(root, ignore_errors=True)
