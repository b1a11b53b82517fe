"""Loading a checkpoint into an architecture: a class-count mismatch is named as such."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from coreml_bench.models import build_model, load_model


def test_num_classes_that_does_not_match_the_checkpoint_is_named(tmp_path: Path) -> None:
    checkpoint = tmp_path / "cnn.pth"
    torch.save(build_model("fashion_cnn", 10).state_dict(), checkpoint)
    assert load_model("fashion_cnn", checkpoint, 10) is not None
    with pytest.raises(
        ValueError, match=r"num_classes=12: size mismatch .*\(\[10, 128\]\)"
    ) as raised:
        load_model("fashion_cnn", checkpoint, 12)
    assert "models[].num_classes differs from the checkpoint's class count" in str(raised.value)
