"""The ssh and scp command lines the remote profiler builds: options end before the
destination, and every remote path is quoted for the far side's shell."""

from __future__ import annotations

from pathlib import Path

import pytest
from coreml_bench.profile import remote
from coreml_bench.profile.settings import RemoteSettings


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    seen: list[list[str]] = []
    monkeypatch.setattr(remote, "_run", lambda command, what, settings: seen.append(command) or "")
    return seen


def test_ssh_and_scp_end_options_before_the_destination(
    commands: list[list[str]], tmp_path: Path
) -> None:
    settings = RemoteSettings(
        host="mac.local", user="me", ssh_options=["StrictHostKeyChecking=accept-new"]
    )
    remote.ssh(settings, "true", "probing")
    remote.copy_to(settings, [tmp_path], "/tmp/coreml-bench/run-1/src/", "copying")
    ssh, scp = commands
    assert ssh[ssh.index("--") + 1 :] == ["me@mac.local", "true"]
    assert ssh[ssh.index("StrictHostKeyChecking=accept-new") - 1] == "-o"
    assert scp[-1] == "me@mac.local:/tmp/coreml-bench/run-1/src/"
    assert scp[scp.index("--") + 1 : -1] == [str(tmp_path)]


def test_a_remote_path_needing_quotes_is_quoted(commands: list[list[str]], tmp_path: Path) -> None:
    # Settings refuse such a workdir; the transport quotes anyway (defence in depth).
    settings = RemoteSettings(host="mac.local")
    remote.copy_to(settings, [tmp_path], "/tmp/a b;touch x", "copying")
    assert commands[0][-1] == "mac.local:'/tmp/a b;touch x'"
