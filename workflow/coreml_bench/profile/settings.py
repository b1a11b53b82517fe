"""Section ``profiling``: which profiler measures latency, how often, on which units."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..schema_base import StrictModel, registry_name
from .registry import PROFILERS, LatencyRun

TorchDevice = Literal["cpu", "cuda"]
ComputeUnit = Literal["ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE"]


# The only `-o` options a config may pass to ssh/scp, with the values each may take. Options
# such as ProxyCommand, LocalCommand or Include run commands or read other files: refused.
SSH_OPTIONS = {
    "StrictHostKeyChecking": r"yes|no|accept-new|ask|off",
    "UserKnownHostsFile": r"[A-Za-z0-9_./~][A-Za-z0-9_./~-]*",
    "HostKeyAlias": r"[A-Za-z0-9_.][A-Za-z0-9_.-]*",
    "CheckHostIP": r"yes|no",
    "Compression": r"yes|no",
    "ServerAliveInterval": r"\d{1,4}",
    "ServerAliveCountMax": r"\d{1,3}",
    "ConnectionAttempts": r"\d{1,2}",
}


def _vetted_ssh_option(option: str) -> str:
    key, sep, value = option.partition("=")
    allowed = {name.lower(): (name, pattern) for name, pattern in SSH_OPTIONS.items()}
    if not sep or key.strip().lower() not in allowed:
        raise ValueError(
            f"ssh option {option!r} is not allowed; give Key=Value with Key one of "
            f"{', '.join(SSH_OPTIONS)} (host, user, port and identity_file are fields)"
        )
    name, pattern = allowed[key.strip().lower()]
    if not re.fullmatch(pattern, value.strip()):
        raise ValueError(f"ssh option {name} takes a value matching {pattern}, got {value!r}")
    return f"{name}={value.strip()}"


class RemoteSettings(StrictModel):
    """A machine reachable over SSH with key authentication (e.g. a Mac) that runs the profiler.

    The package and the profiler's source are copied over; the far side needs only Python with
    coremltools and numpy (plus torch for its ``host`` backend).
    """

    # No leading '-': ssh would read the value as an option.
    host: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:\[\]][A-Za-z0-9_.:\-\[\]]*$")
    user: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
    port: int = Field(default=22, ge=1, le=65535)
    identity_file: Path | None = Field(default=None, description="private key for ssh -i")
    python: str = Field(
        default="python3",
        pattern=r"^[A-Za-z0-9_./~+][A-Za-z0-9_./~+-]*$",
        description="the far side's Python (path or command)",
    )
    backend: registry_name(PROFILERS, where=lambda entry: entry.far_side) = Field(  # type: ignore[valid-type]
        default="coreml", description="the profiler the far side runs (coreml: a Mac)"
    )
    workdir: str = Field(
        default="/tmp/coreml-bench",
        pattern=r"^/[A-Za-z0-9_./-]*$",
        description="absolute folder on the far side for run folders (letters, digits, _ . - /)",
    )
    ssh_options: list[str] = Field(
        default_factory=list,
        description=f"extra `-o Key=Value` options, Key one of {', '.join(SSH_OPTIONS)}",
    )
    connect_timeout_s: int = Field(default=10, ge=1)

    @field_validator("workdir")
    @classmethod
    def _no_parent_steps(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError(f"workdir {value!r} must not contain '..'")
        return value

    @field_validator("ssh_options")
    @classmethod
    def _vetted_options(cls, options: list[str]) -> list[str]:
        return [_vetted_ssh_option(option) for option in options]


class ProfilingSettings(StrictModel):
    backend: registry_name(PROFILERS, also=("auto",)) = Field(  # type: ignore[valid-type]
        default="auto", description="auto: coreml on macOS, host elsewhere; remote: over SSH"
    )
    runs: int = Field(default=30, ge=1, le=100_000)
    warmup: int = Field(default=5, ge=0, le=10_000)
    compute_units: list[ComputeUnit] = Field(
        default_factory=lambda: ["ALL"],
        min_length=1,
        description="Core ML compute units, each measured; the first fills the Latency column",
    )
    threads: int = Field(default=1, ge=1, le=256, description="torch threads for the host backend")
    device: TorchDevice = Field(default="cpu", description="where the host backend runs")
    remote: RemoteSettings | None = None

    @field_validator("compute_units", mode="before")
    @classmethod
    def _one_unit_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _remote_needs_a_target(self) -> ProfilingSettings:
        if self.backend == "remote" and self.remote is None:
            raise ValueError("backend 'remote' needs profiling.remote (host, user, python, ...)")
        if len(set(self.compute_units)) != len(self.compute_units):
            raise ValueError(f"compute_units has duplicates: {self.compute_units}")
        return self

    def latency_run(self) -> LatencyRun:
        """What the profiler measures (a plain dataclass: the far side has no pydantic)."""
        return LatencyRun(
            runs=self.runs,
            warmup=self.warmup,
            compute_units=tuple(self.compute_units),
            threads=self.threads,
            device=self.device,
            remote=self.remote,
        )
