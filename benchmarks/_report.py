"""Shared by the benchmark scripts: write a results file without losing its hand-written notes."""

from __future__ import annotations

from pathlib import Path


def write_keeping_notes(out: Path, text: str) -> None:
    """Write ``text`` to ``out``; a "## Notes" section already in ``out`` survives the rerun."""
    if out.exists() and "\n## Notes" in out.read_text():
        text += "\n## Notes" + out.read_text().split("\n## Notes", 1)[1]
    out.write_text(text)
    print(text)
