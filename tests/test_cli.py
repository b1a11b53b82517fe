"""`coreml-bench`: check-config agrees with the Snakefile and says what stays dense;
write-config regenerates the generated files; verify reports a clean results/ tree."""

from __future__ import annotations

from pathlib import Path

from coreml_bench.cli import main
from helpers import ROOT


def test_check_config_accepts_the_quickstart_and_estimates_dense_weights(capsys) -> None:
    assert main(["check-config", str(ROOT / "config" / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "ok (10 model × experiment × trial jobs)" in out
    assert "efficientnet_lite0 / kmeans-4bit-g16: 11 weight tensor(s) stay dense" in out


def test_check_config_names_the_file_and_the_field(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments:\n  - id: k\n    compression: {algorithm: palettize_kmeans}\n")
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}: invalid config:")
    assert "experiments[0].compression.palettize_kmeans.n_bits: Field required" in err


def test_write_config_reproduces_the_committed_files(tmp_path: Path) -> None:
    assert main(["write-config", "--config-dir", str(tmp_path), "--schema-dir", str(tmp_path)]) == 0
    assert (tmp_path / "config.yaml").read_text() == (ROOT / "config/config.yaml").read_text()
    assert (tmp_path / "README.md").read_text() == (ROOT / "config/README.md").read_text()
    schema = ROOT / "workflow/schemas/config.schema.json"
    assert (tmp_path / "config.schema.json").read_text() == schema.read_text()


def test_verify_an_empty_results_tree(tmp_path: Path, capsys) -> None:
    assert main(["verify", str(tmp_path)]) == 0
    assert "ok: 0 records, 0 packages, 0 checkpoints" in capsys.readouterr().out


def test_check_config_plans_the_paper_without_its_data(capsys) -> None:
    paper = str(ROOT / "config" / "paper.yaml")
    assert main(["check-config", paper]) == 1
    assert "data.training.path: folder '/data/imagenet/train' does not exist" in (
        capsys.readouterr().err
    )
    assert main(["check-config", paper, "--without-data"]) == 0
    out = capsys.readouterr().out
    assert "not on disk here" in out and "/data/coco/train2017" in out
    assert "reference gate: 87 of 87 published rows" in out


def test_make_imagenet_sample_writes_wnid_folders(tmp_path: Path, capsys) -> None:
    assert main(["make-imagenet-sample", str(tmp_path / "sample")]) == 0
    folders = sorted(p.name for p in (tmp_path / "sample").iterdir())
    assert len(folders) == 19 and all(name.startswith("n") for name in folders)
    assert sum(len(list((tmp_path / "sample" / f).iterdir())) for f in folders) == 20
