"""Lesions from model-grid boxes equal lesions from the whole resampled map, on oblique, anisotropic, offset grids."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
from conftest import make_volume, oblique_direction

from LesionDetectLib.lesion_boxes import candidate_boxes, find_lesions
from LesionDetectLib.lesions import from_probability
from LesionDetectLib.preprocess import model_grid, to_input_grid


def blobs_on_grid(size, seed: int, count: int = 12) -> np.ndarray:
    """Gaussian blobs of random size and height on a model grid ``[x, y, z]``, some at its edges."""
    rng = np.random.default_rng(seed)
    x, y, z = np.indices(size, dtype=np.float32)
    probability = np.zeros(size, np.float32)
    for _ in range(count):
        centre = rng.uniform(-1, np.array(size) + 1)
        sigma = rng.uniform(1.2, 3.0)
        height = rng.uniform(0.6, 1.0)
        distance2 = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2
        probability = np.maximum(probability, height * np.exp(-distance2 / (2 * sigma**2)), dtype=np.float32)
    return probability


GEOMETRIES = {  # (input shape [k, j, i], spacing, direction, model spacing)
    "oblique, finer than the model grid": ((30, 44, 40), (0.8, 0.9, 2.5), oblique_direction(), (2.0, 2.0, 2.0)),
    "identity, coarser slices than the model grid": ((14, 40, 36), (1.0, 1.2, 3.0), np.eye(3), (1.5, 1.5, 1.5)),
    "mirrored axes, anisotropic": ((20, 30, 50), (0.6, 1.7, 2.2), np.diag([-1.0, 1.0, -1.0]), (1.5, 2.5, 1.0)),
}


@pytest.mark.parametrize("name", GEOMETRIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_box_lesions_equal_whole_map_lesions(name, seed):
    shape, spacing, direction, model_spacing = GEOMETRIES[name]
    volume = make_volume(shape, spacing, origin=(-31.5, 17.25, 204.0), direction=direction, lesions=())
    grid = model_grid(volume, model_spacing)
    probability = blobs_on_grid(grid.size, seed)
    whole = from_probability(to_input_grid(probability, grid, volume), volume, 0.7, 2.0, outline_threshold=0.45)
    boxed = find_lesions(probability, grid, volume, 0.7, 2.0, outline_threshold=0.45)
    assert len(whole[0]) > 0
    np.testing.assert_array_equal(boxed[1], whole[1])
    for ours, theirs in zip(boxed[0], whole[0], strict=True):
        ours, theirs = asdict(ours), asdict(theirs)
        for key, value in theirs.items():
            assert ours[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


def test_boxes_are_disjoint_and_skip_regions_below_the_threshold():
    volume = make_volume((30, 44, 40), direction=oblique_direction(), lesions=())
    grid = model_grid(volume, (2.0, 2.0, 2.0))
    probability = np.zeros(grid.size, np.float32)
    probability[3:6, 3:6, 3:6] = 0.95  # a lesion
    probability[14:17, 14:17, 8:11] = 0.6  # above the outline threshold only: never a lesion
    boxes = candidate_boxes(probability, grid, volume, 0.5, 0.9)
    assert len(boxes) == 1
    kept = np.zeros(volume.array.shape, bool)
    kept[boxes[0]] = True
    full = to_input_grid(probability, grid, volume)
    assert (full >= 0.5)[~kept].sum() > 0  # the weak region lies outside the box ...
    assert np.all((full >= 0.9) <= kept)  # ... and every voxel of the lesion inside it
    many = candidate_boxes(blobs_on_grid(grid.size, 0, count=10), grid, volume, 0.7, 0.7)
    assert len(many) > 3
    for index, first in enumerate(many):
        for second in many[index + 1:]:
            assert any(a.stop <= b.start or b.stop <= a.start for a, b in zip(first, second))


def test_nothing_above_the_outline_threshold_gives_no_box_and_a_zero_threshold_the_whole_volume():
    volume = make_volume((10, 12, 14), lesions=())
    grid = model_grid(volume, (2.0, 2.0, 2.0))
    empty = np.zeros(grid.size, np.float32)
    assert candidate_boxes(empty, grid, volume, 0.5, 0.5) == []
    assert candidate_boxes(empty, grid, volume, 0.0, 0.5) == [(slice(0, 10), slice(0, 12), slice(0, 14))]
    lesions, label_map = find_lesions(empty, grid, volume, 0.5)
    assert lesions == [] and label_map.shape == volume.array.shape and not label_map.any()


def test_too_many_candidate_regions_give_the_whole_volume(monkeypatch):
    volume = make_volume((30, 44, 40), direction=oblique_direction(), lesions=())
    grid = model_grid(volume, (2.0, 2.0, 2.0))
    probability = blobs_on_grid(grid.size, 0, count=10)
    assert len(candidate_boxes(probability, grid, volume, 0.7, 0.7)) > 1
    monkeypatch.setattr("LesionDetectLib.lesion_boxes.MAX_BOXES", 1)
    assert candidate_boxes(probability, grid, volume, 0.7, 0.7) == [(slice(0, 30), slice(0, 44), slice(0, 40))]
