"""A package's content digest: equal for reruns that save the same model (though Manifest.json
and model.mlmodel bytes differ), different for any change to the model itself.

Real coremltools conversions of a tiny seeded network. The reruns run in fresh processes,
because within one process model.mlmodel comes out byte-identical (see the digest module).
Run as a script, this file converts that network and saves it to the path given.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from coreml_bench.mlpackage.digest import (
    MANIFEST,
    PackageContentError,
    package_content_digest,
)

SPEC = "Data/com.apple.CoreML/model.mlmodel"
WEIGHTS = "Data/com.apple.CoreML/weights/weight.bin"
RERUNS = 2


def _network(tweak: bool = False) -> Any:
    """A seeded conv+relu+linear network; ``tweak`` changes one weight value."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    ).eval()
    if tweak:
        with torch.no_grad():
            net[2].weight[0, 0, 0, 0] += 0.5
    return net


def _convert(dest: Path, *, input_name: str = "x", tweak: bool = False) -> Path:
    import coremltools as ct
    import torch

    example = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        traced = torch.jit.trace(_network(tweak), example)
    mlmodel = ct.convert(
        traced,
        inputs=[ct.TensorType(name=input_name, shape=example.shape)],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS16,
    )
    mlmodel.save(str(dest))
    return dest


def _quantize(source: Path, dest: Path) -> Path:
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    config = cto.OptimizationConfig(cto.OpLinearQuantizerConfig(weight_threshold=0))
    loaded = ct.models.MLModel(str(source), skip_model_load=True)
    cto.linear_quantize_weights(loaded, config).save(str(dest))
    return dest


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _convert(tmp_path_factory.mktemp("base") / "base.mlpackage")


@pytest.fixture(scope="module")
def reruns(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The same conversion run in fresh processes at once, as a rerun of the stage would be."""
    folder = tmp_path_factory.mktemp("reruns")
    packages = [folder / f"rerun{i}.mlpackage" for i in range(RERUNS)]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, str(package)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for package in packages
    ]
    for proc in procs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output
    return packages


def test_two_conversions_in_one_process_have_one_digest(base: Path, tmp_path: Path) -> None:
    again = _convert(tmp_path / "again.mlpackage")
    # Fresh item UUIDs in every package coremltools creates.
    assert _sha(again / MANIFEST) != _sha(base / MANIFEST)
    assert package_content_digest(again) == package_content_digest(base)


def test_reruns_in_fresh_processes_have_one_digest(base: Path, reruns: list[Path]) -> None:
    packages = [base, *reruns]
    assert len({_sha(p / WEIGHTS) for p in packages}) == 1  # the weights were always equal
    assert len({_sha(p / MANIFEST) for p in packages}) == len(packages)
    # Map entries are written in a per-process order (the conv ops' 8-entry input map alone
    # has 8! orders); 20 measured processes all wrote different bytes.
    assert len({_sha(p / SPEC) for p in packages}) > 1
    assert len({package_content_digest(p) for p in packages}) == 1


def test_a_rerun_on_another_day_has_the_same_digest(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coremltools.converters import _converters_entry

    class Tomorrow(datetime.date):
        @classmethod
        def today(cls) -> Tomorrow:
            day = datetime.date.today() + datetime.timedelta(days=1)
            return cls(day.year, day.month, day.day)

    monkeypatch.setattr(_converters_entry, "date", Tomorrow)
    later = _convert(tmp_path / "later.mlpackage")
    assert _date(later) != _date(base)
    assert _sha(later / SPEC) != _sha(base / SPEC)
    assert package_content_digest(later) == package_content_digest(base)


def _date(package: Path) -> str:
    from coreml_bench.mlpackage.files import load_spec

    return load_spec(package).description.metadata.userDefined[
        "com.github.apple.coremltools.conversion_date"
    ]


def test_one_changed_weight_changes_the_digest(base: Path, tmp_path: Path) -> None:
    tweaked = _convert(tmp_path / "tweaked.mlpackage", tweak=True)
    assert package_content_digest(tweaked) != package_content_digest(base)


def test_compression_changes_the_digest_and_reproduces(base: Path, tmp_path: Path) -> None:
    first = _quantize(base, tmp_path / "q1.mlpackage")
    second = _quantize(base, tmp_path / "q2.mlpackage")
    assert _sha(first / MANIFEST) != _sha(second / MANIFEST)
    assert package_content_digest(first) == package_content_digest(second)
    assert package_content_digest(first) != package_content_digest(base)


def test_a_renamed_input_changes_the_digest(base: Path, tmp_path: Path) -> None:
    renamed = _convert(tmp_path / "renamed.mlpackage", input_name="image")
    assert _sha(renamed / WEIGHTS) == _sha(base / WEIGHTS)
    assert package_content_digest(renamed) != package_content_digest(base)


def test_user_visible_metadata_is_part_of_the_digest(base: Path, tmp_path: Path) -> None:
    """Only the conversion date is dropped: another metadata value is another model."""
    import coremltools as ct

    mlmodel = ct.models.MLModel(str(base), skip_model_load=True)
    mlmodel.author = "someone else"
    mlmodel.save(str(tmp_path / "authored.mlpackage"))
    assert package_content_digest(tmp_path / "authored.mlpackage") != package_content_digest(base)


def test_snakemake_markers_are_not_content(base: Path, tmp_path: Path) -> None:
    package = tmp_path / "marked.mlpackage"
    shutil.copytree(base, package)
    (package / ".snakemake_timestamp").touch()
    assert package_content_digest(package) == package_content_digest(base)
    (package / "Data" / "extra.txt").write_text("not a marker")
    assert package_content_digest(package) != package_content_digest(base)


def test_a_truncated_weight_file_changes_the_digest(base: Path, tmp_path: Path) -> None:
    package = tmp_path / "truncated.mlpackage"
    shutil.copytree(base, package)
    blob = package / WEIGHTS
    blob.write_bytes(blob.read_bytes()[:-2])
    assert package_content_digest(package) != package_content_digest(base)


def test_a_package_without_its_manifest_or_spec_is_named(base: Path, tmp_path: Path) -> None:
    package = tmp_path / "broken.mlpackage"
    shutil.copytree(base, package)
    (package / SPEC).unlink()
    with pytest.raises(PackageContentError, match=f"package '{package}' lacks its model spec"):
        package_content_digest(package)
    (package / MANIFEST).write_text(json.dumps({"itemInfoEntries": {}}))
    with pytest.raises(PackageContentError, match=f"package '{package}' has no readable"):
        package_content_digest(package)


def test_the_digest_imports_neither_coremltools_nor_torch(base: Path) -> None:
    """The package is imported at Snakemake parse time; only the generated protos load."""
    code = (
        "import sys; from pathlib import Path\n"
        "from coreml_bench.mlpackage.digest import package_content_digest\n"
        f"print(package_content_digest(Path({str(base)!r})))\n"
        "assert 'coremltools' not in sys.modules and 'torch' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == package_content_digest(base)


if __name__ == "__main__":
    _convert(Path(sys.argv[1]))
