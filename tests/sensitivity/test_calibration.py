"""The calibration split: evaluation images as deterministic views."""

from __future__ import annotations

import torch
from coreml_bench.data import DataSelection, Preprocessing
from coreml_bench.data.kinds import FoolboxSampleData
from coreml_bench.data.transforms import eval_transform
from coreml_bench.sensitivity.calibration import calibration_dataset
from coreml_bench.sensitivity.settings import CalibrationSettings

PREPROCESSING = Preprocessing(resize=64, crop_size=56, mean=(0.5,) * 3, std=(0.25,) * 3)


def test_views_are_deterministic_and_view_zero_is_the_evaluation_crop() -> None:
    data = DataSelection(source=FoolboxSampleData(), limit=3)
    settings = CalibrationSettings(views_per_image=3, seed=7)
    views = calibration_dataset(data, PREPROCESSING, settings)
    assert len(views) == 9
    plain = DataSelection(source=FoolboxSampleData(), limit=3)
    evaluation = plain.kind.dataset(plain.source, eval_transform(PREPROCESSING), 3)  # type: ignore[misc]
    for image in range(3):
        first, label = views[3 * image]
        assert torch.equal(first, evaluation[image][0])
        assert [views[3 * image + v][1] for v in range(3)] == [label] * 3
        assert not torch.equal(views[3 * image + 1][0], first)
        assert not torch.equal(views[3 * image + 1][0], views[3 * image + 2][0])
    again = calibration_dataset(data, PREPROCESSING, settings)
    assert all(torch.equal(views[i][0], again[i][0]) for i in range(9))
    other = calibration_dataset(data, PREPROCESSING, CalibrationSettings(views_per_image=3))
    assert not torch.equal(views[1][0], other[1][0])  # the seed draws other crops
