"""`coreml-bench verify`: check every package and record under results/ against its digest.

Packages are checked against the ``package_sha256`` their manifest recorded, checkpoints
against the ``sha256`` of their weights manifest, and every JSON record must parse and say
which stage wrote it. Nothing is changed; the report lists each problem with its path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .io import RecordError, read_json, sha256_file
from .mlpackage.files import PackageIntegrityError, verify_package

RECORD_FOLDERS = (
    "weights",
    "converted",
    "compressed",
    "evaluation",
    "profile",
    "tracking",
    "checks",
)


@dataclass
class IntegrityReport:
    records: int = 0
    packages: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        checked = (
            f"{self.records} records, {self.packages} packages, {self.checkpoints} checkpoints"
        )
        if not self.problems:
            return f"ok: {checked} match their digests"
        listed = "\n".join(f"  {problem}" for problem in self.problems)
        return f"{len(self.problems)} problem(s) in {checked}:\n{listed}"


def _records(results: Path) -> Iterator[Path]:
    for folder in RECORD_FOLDERS:
        root = results / folder
        if root.is_dir():
            # Records only: JSON files outside package folders and the compiled programs
            # beside them (model.mlpackage.torch/plan.json).
            yield from sorted(
                p
                for p in root.rglob("*.json")
                if not any(x.suffix in (".mlpackage", ".torch") for x in p.parents)
            )


def _package_of(manifest: Path, record: dict) -> Path | None:
    """The package a manifest describes (beside it), or None if it describes none."""
    if record.get("stage") == "convert":
        return manifest.with_suffix(".mlpackage")
    if record.get("stage") == "compress":
        return manifest.parent / "model.mlpackage"
    return None


def verify_results(results: Path) -> IntegrityReport:
    report = IntegrityReport()
    for path in _records(Path(results)):
        try:
            record = read_json(path)
        except RecordError as error:
            report.problems.append(str(error))
            continue
        report.records += 1
        if not isinstance(record, dict) or "stage" not in record:
            report.problems.append(f"record {str(path)!r} does not say which stage wrote it")
            continue
        package = _package_of(path, record)
        if package is not None:
            try:
                verify_package(package, path)
                report.packages += 1
            except (PackageIntegrityError, RecordError) as error:
                report.problems.append(str(error))
        if record["stage"] in ("download", "train"):
            weights = path.with_suffix(".pth")
            if not weights.is_file():
                report.problems.append(f"checkpoint {str(weights)!r} of {str(path)!r} is missing")
            elif sha256_file(weights) != record.get("sha256"):
                report.problems.append(
                    f"checkpoint {str(weights)!r} does not match the sha256 recorded in "
                    f"{str(path)!r}"
                )
            else:
                report.checkpoints += 1
    return report
