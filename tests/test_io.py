"""Files on disk: atomic writes and content digests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coreml_bench.io import json_digest, write_json_atomic


def test_atomic_json_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    write_json_atomic(target, {"ok": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {1j: 2})  # a complex key cannot be JSON
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_json_digest_ignores_key_order() -> None:
    assert json_digest({"a": 1, "b": [Path("x")]}) == json_digest({"b": ["x"], "a": 1})
    assert json_digest({"a": 1}) != json_digest({"a": 2})
