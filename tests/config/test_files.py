"""Config files are read strictly, and `coreml-bench check-config` and `snakemake` refuse the
same files: duplicate keys, templates, NUL bytes, binary files, tags, tabs, non-mappings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from coreml_bench.config import ConfigError
from coreml_bench.config.files import read_config_file
from helpers import ROOT, SNAKEMAKE

BAD_FILES = {
    "duplicate-key.yaml": (
        b"experiments:\n  - id: kmeans-6bit\n    compression:\n      algorithm: palettize_kmeans\n"
        b"      n_bits: 6\n      n_bits: 2\n",
        "duplicate key 'n_bits'",
    ),
    "template.yaml": (b'__use_yte__: true\nstudy: ?"quick" + "start"\n', "yte template"),
    "nul.yaml": (b"study: a\x00b\n", "NUL bytes"),
    "binary.yaml": (bytes(range(256)), "not UTF-8"),
    "python-tag.yaml": (b"study: !!python/object/apply:os.system ['id']\n", "python/object"),
    "tabs.yaml": (b"data:\n\tlimit: 3\n", "tabs cannot indent YAML"),
    "syntax.yaml": (b"experiments: [\n", "not valid YAML"),
    "scalar.yaml": (b"5\n", "must be a mapping of keys, got a int"),
    "list.yaml": (b"- study: a\n", "must be a mapping of keys, got a list"),
    "empty.yaml": (b"", "is empty"),
    "comments.yaml": (b"# nothing here\n", "is empty"),
    "duplicate-json.json": (b'{"study": "a", "study": "b"}', "duplicate key 'study'"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_config_files_are_refused_with_the_reason(name: str, tmp_path: Path) -> None:
    content, message = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as raised:
        read_config_file(path)
    assert str(path) in str(raised.value)


def test_a_folder_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        read_config_file(tmp_path)


def test_check_config_and_snakemake_refuse_the_same_files(tmp_path: Path) -> None:
    """One real snakemake parse per file: each exits non-zero with the same reason."""
    for name in ("duplicate-key.yaml", "template.yaml", "tabs.yaml", "scalar.yaml", "empty.yaml"):
        content, message = BAD_FILES[name]
        path = tmp_path / name
        path.write_bytes(content)
        checked = subprocess.run(
            [sys.executable, "-m", "coreml_bench.cli", "check-config", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert checked.returncode == 1 and message in checked.stderr, (name, checked.stderr)
        assert "Traceback" not in checked.stderr
        planned = subprocess.run(
            [SNAKEMAKE, "-n", "--snakefile", str(ROOT / "Snakefile"), "--configfile", str(path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        output = planned.stdout + planned.stderr
        assert planned.returncode != 0, name
        # Snakemake itself refuses non-mappings and broken YAML; the Snakefile the rest.
        assert message in output or "Config file" in output, (name, output[-2000:])
