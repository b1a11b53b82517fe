"""Values a careless or hostile config slips in are refused before any job, naming the field
and a bounded echo of the value."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from coreml_bench.config import ConfigError, validate_config
from coreml_bench.config.files import parse_config_text

REMOTE = {"backend": "remote", "remote": {"host": "mac.local"}}


def _profiling(**remote: object) -> dict:
    return {"profiling": {**REMOTE, "remote": {**REMOTE["remote"], **remote}}}


CASES = {
    "n_bits true": (
        {
            "experiments": [
                {"id": "k", "compression": {"algorithm": "palettize_kmeans", "n_bits": True}}
            ]
        },
        "n_bits: expected one of 1, 2, 3, 4, 6, 8, got a boolean",
    ),
    "trials true": (
        {"experiments": [{"id": "k", "trials": True, "compression": {"algorithm": "none"}}]},
        "trials: expected int or NoneType, got a boolean",
    ),
    "block_size 1e9": (
        {
            "experiments": [
                {
                    "id": "q",
                    "compression": {
                        "algorithm": "quantize_linear",
                        "dtype": "int4",
                        "granularity": "per_block",
                        "block_size": 10**9,
                    },
                }
            ]
        },
        "block_size: Input should be less than or equal to 4096",
    ),
    "100000 k-means workers": (
        {
            "experiments": [
                {
                    "id": "k",
                    "compression": {
                        "algorithm": "palettize_kmeans",
                        "n_bits": 4,
                        "num_kmeans_workers": 100000,
                    },
                }
            ]
        },
        "num_kmeans_workers: Input should be less than or equal to 64",
    ),
    "crop larger than resize": (
        {
            "models": [
                {
                    "id": "m",
                    "architecture": "resnet18",
                    "source": {"kind": "random"},
                    "preprocessing": {
                        "resize": 200,
                        "crop_size": 224,
                        "mean": [0, 0, 0],
                        "std": [1, 1, 1],
                    },
                }
            ]
        },
        "crop_size=224 is larger than resize=200",
    ),
    "ids differing only in case": (
        {
            "experiments": [
                {"id": "int8", "compression": {"algorithm": "none"}},
                {"id": "INT8", "compression": {"algorithm": "none"}},
            ]
        },
        "experiments[1].id: 'INT8' differs from id 'int8' only in case",
    ),
    "experiment on no model": (
        {"experiments": [{"id": "k", "models": [], "compression": {"algorithm": "none"}}]},
        "experiments[0].models: [] selects no model",
    ),
    "file URL outside the workdir": (
        {
            "models": [
                {
                    "id": "m",
                    "architecture": "resnet18",
                    "source": {"kind": "url", "url": "file:///etc/passwd"},
                }
            ]
        },
        "points outside the working directory",
    ),
    "garbage tracking URI": (
        {"tracking": {"uri": "not a uri"}},
        "tracking.uri: not an MLflow tracking URI",
    ),
    "ssh ProxyCommand": (
        _profiling(ssh_options=["ProxyCommand=touch /tmp/pwned"]),
        "ssh option 'ProxyCommand=touch /tmp/pwned' is not allowed",
    ),
    "ssh LocalCommand": (
        _profiling(ssh_options=["PermitLocalCommand=yes", "LocalCommand=id"]),
        "is not allowed",
    ),
    "workdir with a shell command": (
        _profiling(workdir="/tmp/x;touch y"),
        "profiling.remote.workdir: String should match pattern",
    ),
    "workdir with ..": (_profiling(workdir="/tmp/../etc"), "must not contain '..'"),
    "host that is an option": (
        _profiling(host="-oProxyCommand=x"),
        "profiling.remote.host: String should match",
    ),
    "user that is an option": (_profiling(user="-x"), "profiling.remote.user: String should match"),
    "python with a shell command": (
        _profiling(python="python3;id"),
        "profiling.remote.python: String should match",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_values_are_refused_naming_field_and_value(case: str) -> None:
    raw, message = CASES[case]
    with pytest.raises(ConfigError, match=r".*") as raised:
        validate_config(raw)
    assert message in str(raised.value)


def test_vetted_ssh_options_and_safe_paths_are_accepted() -> None:
    cfg = validate_config(
        _profiling(ssh_options=["StrictHostKeyChecking=accept-new"], workdir="/tmp/bench")
    )
    assert cfg.profiling.remote is not None
    assert cfg.profiling.remote.ssh_options == ["StrictHostKeyChecking=accept-new"]


def test_a_file_url_inside_the_workdir_is_accepted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"file://{tmp_path}/weights.pth"
    source = {"kind": "url", "url": url}
    cfg = validate_config({"models": [{"id": "m", "architecture": "resnet18", "source": source}]})
    assert cfg.models[0].source.url == url


def test_yaml_alias_bomb_gets_a_short_error_fast() -> None:
    """569 bytes of aliases expand to 10**7 leaves; the error must not print them."""
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i, name in enumerate("bcdefg"):
        previous = "abcdefg"[i]
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 10)}]")
    bomb = "\n".join(lines) + "\nstudy: *g\n"
    assert len(bomb) < 600
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as raised:
        validate_config(parse_config_text(bomb, "bomb.yaml"))
    assert time.perf_counter() - t0 < 5.0
    assert len(str(raised.value)) < 2000
    assert "study" in str(raised.value)


def test_shipped_configs_still_validate_strictly() -> None:
    root = Path(__file__).resolve().parents[2] / "config"
    for path in sorted(root.glob("*.yaml")):
        raw = parse_config_text(path.read_text(), str(path))
        assert validate_config(raw, coremltools_check=False).variants()
    assert yaml.safe_load((root / "config.yaml").read_text())
    assert os.path.isdir(root)


def test_a_local_source_that_is_a_folder_is_refused_before_any_job(tmp_path: Path) -> None:
    from coreml_bench.config import check_local_paths

    cfg = validate_config(
        {
            "models": [
                {
                    "id": "m",
                    "architecture": "resnet18",
                    "source": {"kind": "local", "path": str(tmp_path)},
                }
            ]
        }
    )
    with pytest.raises(
        ConfigError, match=r"models\[0\].source.path: .* is a folder, not a checkpoint"
    ):
        check_local_paths(cfg)
