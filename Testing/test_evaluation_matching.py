"""`evaluation.matching`: which prediction hits which reference lesion (distances in mm on oblique, anisotropic
grids), duplicates and ignored lesions, and Dice."""

from __future__ import annotations

import numpy as np
import pytest
from evaluation_cases import MS, cube, hand_cases, lps, rotation, volume

from LesionDetectLib.evaluation import (
    Prediction,
    dice_coefficient,
    match_case,
    reference_lesions,
    resolve_rule,
    sphere_lesions,
)


def test_statuses_in_the_hand_example():
    a, b, c = hand_cases()
    assert [o.status for o in a.predictions] == ["tp", "duplicate", "fp", "tp"]
    assert [o.status for o in b.predictions] == ["ignored", "fp", "tp", "fp"]
    assert [o.status for o in c.predictions] == ["fp"]
    assert [(o.score, o.prediction_id) for o in a.lesions] == [(0.9, 1), (0.3, 4)]
    assert [o.lesion.ignored for o in b.lesions] == [False, True]


@pytest.mark.parametrize(("offset_mm", "hit"), [(2.9, True), (3.1, False)])
def test_hit_distance_in_mm_on_an_oblique_anisotropic_grid(offset_mm, hit):
    spacing = (0.8, 1.2, 2.5)
    mask = volume((12, 20, 30), spacing=spacing, origin=(-50.0, 20.0, 7.5), direction=rotation(35))
    cube(mask, (10, 10, 5))  # voxels i = 9..11
    point = lps(mask, (11 + offset_mm / spacing[0], 10, 5))  # offset_mm from the centre of voxel i = 11
    reference = reference_lesions(mask, MS)
    distance = reference.distances(np.array([point]))[0, 0]
    assert distance == pytest.approx(offset_mm)
    case = match_case("x", [Prediction(point, 0.9)], reference)
    assert case.predictions[0].status == ("tp" if hit else "fp")
    assert case.counts().tp == (1 if hit else 0)


def test_point_inside_a_thick_voxel_is_at_distance_zero():
    mask = volume((5, 10, 10), spacing=(0.8, 0.8, 6.5), origin=(1.0, 2.0, 3.0))
    cube(mask, (5, 5, 2), half=1)
    mask.array[1, :, :] = 0
    mask.array[3, :, :] = 0  # a one-slice-thick lesion, 6.5 mm slices
    inside = lps(mask, (5, 5, 2.0 + 3.2 / 6.5))  # 3.2 mm (> 3 mm) from the voxel centre, still inside it
    reference = reference_lesions(mask, MS)
    assert reference.distances(np.array([inside]))[0, 0] == 0.0
    outside = lps(mask, (5, 5, 2.0 + 3.4 / 6.5))  # 3.4 mm from the centre: beyond the voxel's 3.25 mm half
    assert reference.distances(np.array([outside]))[0, 0] == pytest.approx(3.4)
    case = match_case("x", [Prediction(inside, 0.9), Prediction(outside, 0.8)], reference)
    assert [o.status for o in case.predictions] == ["tp", "fp"]


def test_prediction_hitting_an_ignored_lesion_counts_neither_way():
    mask = volume((10, 10, 10))
    mask.array[5, 5, 5:7] = 1  # 2 mm³ < 10 mm³
    case = match_case("x", [Prediction((5.5, 5, 5), 0.9)], reference_lesions(mask, MS))
    counts = case.counts()
    assert case.predictions[0].status == "ignored"
    assert (counts.tp, counts.fn, counts.fp, counts.lesions, counts.ignored_lesions) == (0, 0, 0, 0, 1)


def test_duplicate_hits_add_no_false_positive():
    mask = volume((20, 20, 20))
    cube(mask, (10, 10, 10))
    predictions = [Prediction((10, 10, 10), 0.4), Prediction((11, 10, 10), 0.8), Prediction((10, 12, 10), 0.6)]
    case = match_case("x", predictions, reference_lesions(mask, MS))
    assert [o.status for o in case.predictions] == ["duplicate", "tp", "duplicate"]
    assert case.lesions[0].score == 0.8 and case.lesions[0].prediction_id == 2
    counts = case.counts()
    assert (counts.tp, counts.fp, counts.duplicates) == (1, 0, 2)
    # at a threshold above the best hit the lesion is missed, and the duplicates are dropped, not promoted
    assert case.counts(0.9).tp == 0 and case.counts(0.9).fp == 0


def test_sphere_lesions_hit_within_radius():
    reference = sphere_lesions([((10.0, -20.0, 30.0), 8.0)], resolve_rule("luna16"))
    inside, outside = (13.9, -20.0, 30.0), (14.1, -20.0, 30.0)
    case = match_case("x", [Prediction(inside, 0.9), Prediction(outside, 0.8)], reference)
    assert [o.status for o in case.predictions] == ["tp", "fp"]


def test_dice_matches_numpy():
    rng = np.random.default_rng(3)
    for _ in range(10):
        a, b = rng.random((8, 9, 10)) < 0.3, rng.random((8, 9, 10)) < 0.2
        assert dice_coefficient(a, b) == pytest.approx(2 * np.sum(a & b) / (np.sum(a) + np.sum(b)))
    empty = np.zeros((3, 3, 3), bool)
    assert dice_coefficient(empty, empty) == 1.0  # two empty masks: Dice 1 by definition
    assert dice_coefficient(empty, ~empty) == 0.0
