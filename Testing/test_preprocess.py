"""The model grid and intensity normalisation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_volume

from LesionDetectLib.preprocess import (
    background_value,
    model_grid,
    normalise_intensity,
    to_input_grid,
    to_model_grid,
)
from LesionDetectLib.volume import LPS_TO_RAS, Volume


def test_ras_aligned_input_at_model_spacing_is_unchanged():
    """An input already on a RAS grid at the model spacing is resampled onto itself, exactly."""
    array = np.random.default_rng(1).normal(size=(6, 7, 8)).astype(np.float32)
    volume = Volume(array, (1.5, 1.5, 1.5), (-10.0, 20.0, 5.0), LPS_TO_RAS)
    resampled, grid = to_model_grid(volume, (1.5, 1.5, 1.5))
    assert grid.size == (8, 7, 6)
    np.testing.assert_allclose(resampled, array.transpose(2, 1, 0), atol=1e-5)
    np.testing.assert_allclose(to_input_grid(resampled, grid, volume), array, atol=1e-5)


def test_model_grid_covers_an_oblique_volume():
    volume = make_volume()
    grid = model_grid(volume, (1.0, 1.0, 1.0))
    corners = np.array([[i, j, k, 1.0] for i in (0, 35) for j in (0, 39) for k in (0, 23)]) @ volume.ijk_to_lps().T
    ras = corners[:, :3] @ LPS_TO_RAS.T
    origin_ras = LPS_TO_RAS @ np.array(grid.origin)
    assert np.all(ras >= origin_ras - 1e-6)
    assert np.all(ras <= origin_ras + np.array(grid.size) - 1 + 1.0)


def test_round_trip_through_model_grid_keeps_a_blob_in_place():
    volume = make_volume(spacing=(0.7, 0.9, 1.2), lesions=((slice(8, 16), slice(12, 24), slice(10, 22)),))
    resampled, grid = to_model_grid(volume, (1.0, 1.0, 1.0))
    back = to_input_grid(resampled, grid, volume)
    inside = volume.array > 50
    assert np.mean(back[inside] > 50) > 0.9


def test_ct_window():
    out = normalise_intensity(np.array([-2000.0, -100.0, 400.0, 3000.0]), {"kind": "ct", "window": [-100, 400]})
    np.testing.assert_allclose(out, [0.0, 0.0, 1.0, 1.0])


@pytest.mark.parametrize(("scale", "offset"), [(1.0, 0.0), (37.5, 0.0), (0.01, -3.0), (250.0, 1000.0)])
def test_mr_normalisation_ignores_scanner_scaling(scale, offset):
    rng = np.random.default_rng(0)
    brain = np.zeros((20, 20, 20), np.float32)
    brain[4:16, 4:16, 4:16] = rng.normal(100, 15, size=(12, 12, 12))
    brain[8:10, 8:10, 8:10] = 250
    reference = normalise_intensity(brain, {"kind": "mr", "percentiles": [0.5, 99.5]})
    rescaled = normalise_intensity(brain * scale + offset, {"kind": "mr", "percentiles": [0.5, 99.5]})
    np.testing.assert_allclose(rescaled, reference, atol=1e-4)
    assert background_value(brain * scale + offset) == pytest.approx(offset)
