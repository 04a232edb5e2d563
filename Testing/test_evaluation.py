"""Lesion-wise evaluation: rules, matching, hand-computed FROC/CPM, independent checks, Dice, bootstrap."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from LesionDetectLib.evaluation import (
    Prediction,
    ReferenceSet,
    bootstrap_ci,
    cpm,
    dice_coefficient,
    froc_curve,
    froc_from_cases,
    match_case,
    read_predictions,
    reference_lesions,
    resolve_rule,
    sensitivity_at,
    sphere_lesions,
    summarize,
)
from LesionDetectLib.io import read_mask
from LesionDetectLib.volume import Volume, apply_affine

GLIOMA, MS = resolve_rule("glioma"), resolve_rule("ms")


def rotation(degrees: float) -> np.ndarray:
    """A rotation about the S axis composed with a flip of L: a non-trivial direction matrix."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([-1.0, 1.0, 1.0])


def volume(shape_kji, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None) -> Volume:
    return Volume(np.zeros(shape_kji, np.uint8), spacing, origin, np.eye(3) if direction is None else direction)


def cube(mask: Volume, centre_ijk, half=1, value=1) -> None:
    i, j, k = centre_ijk
    mask.array[k - half:k + half + 1, j - half:j + half + 1, i - half:i + half + 1] = value


def lps(mask: Volume, ijk) -> tuple[float, float, float]:
    return tuple(float(v) for v in apply_affine(mask.ijk_to_lps(), np.asarray(ijk, dtype=float)))


# ----------------------------------------------------------------- hand-computed FROC / CPM


def hand_cases():
    """Three cases on a 1 mm grid, ms rule (3×3×3 cubes = 27 mm³ count; 2 voxels = 2 mm³ are ignored).

    A: lesions L1 (at 5,5,5) and L2 (at 20,20,20); predictions 0.9 on L1, 0.6 on L1 (duplicate),
       0.8 far away (FP), 0.3 on L2.
    B: lesion L3 (at 5,5,5) and a 2-voxel lesion (ignored) at (20,5,20); predictions 0.95 on the ignored
       lesion (neither way), 0.7 FP, 0.5 on L3, 0.2 FP.
    C: no lesion (empty mask); prediction 0.4 (FP).
    """
    a, b, c = volume((30, 30, 30)), volume((30, 30, 30)), volume((30, 30, 30))
    cube(a, (5, 5, 5))
    cube(a, (20, 20, 20))
    cube(b, (5, 5, 5))
    b.array[20, 5, 20:22] = 1
    far = (25.0, 5.0, 25.0)
    cases = [
        match_case("A", [Prediction((5, 5, 5), 0.9, 1), Prediction((5.5, 5, 5), 0.6, 2),
                         Prediction(far, 0.8, 3), Prediction((20, 20, 21), 0.3, 4)], reference_lesions(a, MS)),
        match_case("B", [Prediction((20.5, 5, 20), 0.95, 1), Prediction(far, 0.7, 2),
                         Prediction((5, 6, 5), 0.5, 3), Prediction((12, 25, 3), 0.2, 4)], reference_lesions(b, MS)),
        match_case("C", [Prediction(far, 0.4, 1)], reference_lesions(c, MS)),
    ]
    return cases


def test_hand_computed_froc_and_cpm():
    cases = hand_cases()
    # Counted lesions: L1 (score 0.9), L2 (0.3), L3 (0.5) -> 3 lesions; 3 cases.
    # False positives: 0.8 (A), 0.7 (B), 0.2 (B), 0.4 (C). Not counted: 0.6 (duplicate of L1), 0.95 (ignored).
    # Sorted confidences and the cumulative counts (detected, FP) -> (sensitivity, FP per case):
    #   inf: (0, 0) -> (0,   0)
    #   0.9: (1, 0) -> (1/3, 0)
    #   0.8: (1, 1) -> (1/3, 1/3)
    #   0.7: (1, 2) -> (1/3, 2/3)
    #   0.5: (2, 2) -> (2/3, 2/3)
    #   0.4: (2, 3) -> (2/3, 1)
    #   0.3: (3, 3) -> (1,   1)
    #   0.2: (3, 4) -> (1,   4/3)
    curve = froc_from_cases(cases)
    np.testing.assert_allclose(curve.thresholds, [np.inf, 0.9, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2])
    np.testing.assert_allclose(curve.sensitivity, [0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(curve.fp_per_case, [0, 0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 4 / 3])
    # Sensitivity at the last point whose FP/case <= target:
    #   1/8 and 1/4 -> point 0.9 (FP 0) = 1/3;  1/2 -> point 0.8 (FP 1/3) = 1/3;
    #   1 -> point 0.3 (FP 1) = 1;  2, 4, 8 -> point 0.2 (FP 4/3) = 1.
    np.testing.assert_allclose(sensitivity_at(curve), [1 / 3, 1 / 3, 1 / 3, 1, 1, 1, 1])
    # CPM = (3 * 1/3 + 4 * 1) / 7 = 5/7
    assert cpm(curve) == pytest.approx(5 / 7)

    # Operating point at confidence >= 0.5: kept A: 0.9 tp, 0.6 duplicate, 0.8 fp; B: 0.95 ignored, 0.7 fp,
    # 0.5 tp. TP = 2 (L1, L3), FN = 1 (L2), FP = 2 -> sensitivity 2/3, precision 2/4, F1 = 4/(4+2+1) = 4/7,
    # FP per case 2/3.
    metrics, _ = summarize(cases, threshold=0.5, n_resamples=0)
    assert (metrics.tp, metrics.fn, metrics.fp) == (2, 1, 2)
    assert (metrics.duplicates, metrics.ignored_predictions) == (1, 1)
    assert (metrics.n_lesions, metrics.n_ignored_lesions, metrics.n_cases) == (3, 1, 3)
    assert metrics.n_cases_without_lesions == 1
    assert metrics.sensitivity == pytest.approx(2 / 3)
    assert metrics.precision == pytest.approx(0.5)
    assert metrics.f1 == pytest.approx(4 / 7)
    assert metrics.fp_per_case == pytest.approx(2 / 3)
    assert metrics.cpm == pytest.approx(5 / 7)


def test_statuses_in_the_hand_example():
    a, b, c = hand_cases()
    assert [o.status for o in a.predictions] == ["tp", "duplicate", "fp", "tp"]
    assert [o.status for o in b.predictions] == ["ignored", "fp", "tp", "fp"]
    assert [o.status for o in c.predictions] == ["fp"]
    assert [(o.score, o.prediction_id) for o in a.lesions] == [(0.9, 1), (0.3, 4)]
    assert [o.lesion.ignored for o in b.lesions] == [False, True]


def test_froc_edge_cases():
    empty = froc_curve(np.array([]), np.array([]), n_cases=2)
    assert math.isnan(cpm(empty))
    never = froc_curve(np.array([-np.inf, -np.inf]), np.array([0.5]), n_cases=1)
    assert cpm(never) == 0.0
    # ties: a TP and an FP with the same confidence enter the curve together
    tied = froc_curve(np.array([0.5]), np.array([0.5]), n_cases=4)
    np.testing.assert_allclose(tied.fp_per_case, [0, 0.25])
    np.testing.assert_allclose(sensitivity_at(tied, [0.125, 0.25]), [0, 1])


# ----------------------------------------------------------------- rules


def test_blobs_4mm_apart_merge_under_glioma_not_ms_with_anisotropic_spacing():
    mask = volume((12, 10, 40), spacing=(0.5, 0.5, 2.0), origin=(3.0, -7.0, 11.0), direction=rotation(30))
    mask.array[2:4, 3:7, 3:9] = 1  # k = 2, 3
    mask.array[5:7, 3:7, 3:9] = 1  # k = 5, 6: nearest voxel centres 2 slices * 2 mm = 4 mm apart
    assert len(reference_lesions(mask, GLIOMA).lesions) == 1
    assert len(reference_lesions(mask, MS).lesions) == 2
    # 8 mm apart along k (k = 3 -> 7) stays apart, while the same gap in voxels along i (0.5 mm) merges
    far = volume((12, 10, 40), spacing=(0.5, 0.5, 2.0))
    far.array[2:4, 3:7, 3:9] = 1
    far.array[7:9, 3:7, 3:9] = 1
    assert len(reference_lesions(far, GLIOMA).lesions) == 2
    along_i = volume((12, 10, 40), spacing=(0.5, 0.5, 2.0))
    along_i.array[2:8, 3:7, 3:9] = 1
    along_i.array[2:8, 3:7, 13:19] = 1  # gap of 4 steps * 0.5 mm = 2 mm
    assert len(reference_lesions(along_i, GLIOMA).lesions) == 1
    assert len(reference_lesions(along_i, MS).lesions) == 2


def test_merged_lesion_keeps_only_mask_voxels():
    mask = volume((10, 10, 30))
    mask.array[4:7, 4:7, 3:6] = 1
    mask.array[4:7, 4:7, 9:12] = 1  # 4 mm gap
    (lesion,) = reference_lesions(mask, GLIOMA).lesions
    assert lesion.voxel_count == 54 and lesion.volume_mm3 == pytest.approx(54.0)
    assert lesion.centroid_lps == pytest.approx((7.0, 5.0, 5.0))


def test_small_lesion_ignored_under_glioma_counted_under_ms():
    mask = volume((10, 10, 10), spacing=(1.0, 1.0, 2.0))
    mask.array[2:4, 2:4, 2:7] = 1  # 20 voxels * 2 mm³ = 40 mm³
    (glioma,) = reference_lesions(mask, GLIOMA).lesions
    (ms,) = reference_lesions(mask, MS).lesions
    assert glioma.volume_mm3 == pytest.approx(40.0)
    assert glioma.ignored and not ms.ignored


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


def test_rule_overrides_and_description():
    rule = resolve_rule("glioma", merge_mm=0, hit_mm=5)
    assert (rule.merge_distance_mm, rule.min_volume_mm3, rule.hit_distance_mm) == (0.0, 50.0, 5.0)
    assert "modified" in rule.name and "5 mm" in rule.describe()
    assert resolve_rule("ct-tumour") == resolve_rule("ct-tumour", merge_mm=6.0)
    with pytest.raises(ValueError):
        resolve_rule("unknown")
    with pytest.raises(ValueError):
        resolve_rule("ms", hit_mm=-1)


# ----------------------------------------------------------------- independent computations


def random_case(rng: np.random.Generator, spacing, direction, shape=(10, 14, 16), density=0.02):
    """A random mask (blobs of random voxels) and predictions near lesions and anywhere, with tied confidences."""
    mask = volume(shape, spacing=spacing, origin=tuple(rng.uniform(-50, 50, 3)), direction=direction)
    seeds = rng.random(mask.array.shape) < density
    grown = seeds.copy()
    grown[:, :, 1:] |= seeds[:, :, :-1]
    grown[:, 1:, :] |= seeds[:, :-1, :]
    grown &= rng.random(mask.array.shape) < 0.8
    mask.array[grown] = 1
    points = []
    kji = np.argwhere(mask.array > 0)
    for index in rng.choice(len(kji), size=min(len(kji), 8), replace=False) if len(kji) else []:
        k, j, i = kji[index]
        jitter = rng.normal(0, 1.5, 3) / np.asarray(spacing)  # ~1.5 mm, some beyond 3 mm
        points.append(lps(mask, (i, j, k) + jitter))
    for _ in range(rng.integers(0, 6)):
        points.append(lps(mask, rng.uniform(0, 1, 3) * np.array(mask.shape_ijk)))
    predictions = [Prediction(p, float(np.round(rng.uniform(0.05, 1.0), 1))) for p in points]
    return mask, predictions


def brute_force_lesions(mask: Volume, rule):
    """Lesion voxel sets with scipy (independent of SimpleITK): 26-components of the mm-dilated mask."""
    ndimage = pytest.importorskip("scipy.ndimage")
    binary = mask.array > 0
    radius = rule.merge_distance_mm / 2
    grown = binary
    if radius > 0:
        grown = ndimage.distance_transform_edt(~binary, sampling=mask.spacing[::-1]) <= radius + 1e-6
    labels, count = ndimage.label(grown, structure=np.ones((3, 3, 3)))
    lesions = []
    for value in range(1, count + 1):
        kji = np.argwhere((labels == value) & binary)
        if len(kji):
            lesions.append(kji)
    return lesions


def brute_force_hits(mask: Volume, lesions, rule, point) -> list[bool]:
    """For each lesion: is the point inside one of its voxels, or within the hit distance of a voxel centre?"""
    matrix = mask.ijk_to_lps()
    index = np.rint(np.linalg.solve(matrix[:3, :3], np.asarray(point) - matrix[:3, 3])).astype(int)[::-1]
    hits = []
    for kji in lesions:
        centres = apply_affine(matrix, kji[:, ::-1].astype(float))
        inside = bool(np.any(np.all(kji == index, axis=1)))
        hits.append(inside or np.min(np.linalg.norm(centres - point, axis=1)) <= rule.hit_distance_mm)
    return hits


@pytest.mark.parametrize("rule_name", ["ms", "glioma"])
def test_lesions_agree_with_scipy(rule_name):
    rule = resolve_rule(rule_name)
    rng = np.random.default_rng(7)
    for _ in range(5):  # sparse enough for several lesions under glioma's 6 mm merging
        mask, _ = random_case(rng, (0.7, 1.3, 2.0), rotation(20), shape=(12, 30, 40), density=0.0015)
        ours = reference_lesions(mask, rule)
        theirs = brute_force_lesions(mask, rule)
        assert len(theirs) >= 3
        label_map = ours.label_map.array
        our_sets = {frozenset(map(tuple, np.argwhere(label_map == lesion.id))) for lesion in ours.lesions}
        assert our_sets == {frozenset(map(tuple, kji)) for kji in theirs}
        for lesion in ours.lesions:
            assert lesion.volume_mm3 == pytest.approx(lesion.voxel_count * 0.7 * 1.3 * 2.0)
            assert lesion.ignored == (lesion.volume_mm3 < rule.min_volume_mm3)


@pytest.mark.parametrize(("rule", "shape", "density"), [
    (resolve_rule("ms", min_volume_mm3=3.0), (10, 14, 16), 0.02),
    (resolve_rule("glioma", min_volume_mm3=8.0), (12, 30, 40), 0.0015),
])
def test_froc_and_operating_point_agree_with_brute_force_and_sklearn(rule, shape, density):
    metrics_module = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2024)
    cases, brute = [], []
    for number in range(12):
        mask, predictions = random_case(rng, (0.9, 1.1, 1.6), rotation(-40), shape, density)
        cases.append(match_case(str(number), predictions, reference_lesions(mask, rule)))
        lesions = brute_force_lesions(mask, rule)
        voxel = float(np.prod(mask.spacing))
        counted = np.array([len(kji) * voxel >= rule.min_volume_mm3 for kji in lesions], dtype=bool)
        hits = np.array([brute_force_hits(mask, lesions, rule, p.centroid_lps) for p in predictions],
                        dtype=bool).reshape(len(predictions), len(lesions))
        brute.append((np.array([p.confidence for p in predictions]), hits, counted))
    n_cases, n_lesions = len(cases), sum(int(c.sum()) for _, _, c in brute)

    def brute_point(threshold):
        detected = false_positives = 0
        for confidence, hits, counted in brute:
            kept = hits[confidence >= threshold]
            detected += int((kept.any(axis=0) & counted).sum())
            false_positives += int((~kept.any(axis=1)).sum())
        return detected, false_positives

    curve = froc_from_cases(cases)
    confidences = np.unique(np.concatenate([c for c, _, _ in brute]))[::-1]
    points = [(0.0, 0.0)]
    for threshold in confidences:
        detected, false_positives = brute_point(threshold)
        points.append((detected / n_lesions, false_positives / n_cases))
        ours = np.flatnonzero(curve.thresholds >= threshold)[-1]  # our operating point at this threshold
        assert (curve.sensitivity[ours], curve.fp_per_case[ours]) == pytest.approx(points[-1])
    expected_cpm = np.mean([max(s for s, f in points if f <= rate) for rate in (0.125, 0.25, 0.5, 1, 2, 4, 8)])
    assert cpm(curve) == pytest.approx(expected_cpm)

    threshold = 0.5
    y_true, y_pred = [], []
    for confidence, hits, counted in brute:
        kept = hits[confidence >= threshold]
        detected = kept.any(axis=0)
        y_true += [1] * int(counted.sum()) + [0] * int((~kept.any(axis=1)).sum())
        y_pred += list(detected[counted].astype(int)) + [1] * int((~kept.any(axis=1)).sum())
    metrics, _ = summarize(cases, threshold=threshold, n_resamples=0)
    assert metrics.sensitivity == pytest.approx(metrics_module.recall_score(y_true, y_pred))
    assert metrics.precision == pytest.approx(metrics_module.precision_score(y_true, y_pred))
    assert metrics.f1 == pytest.approx(metrics_module.f1_score(y_true, y_pred))
    assert metrics.fp == int(np.sum((np.array(y_true) == 0) & (np.array(y_pred) == 1)))


# ----------------------------------------------------------------- Dice and bootstrap


def test_dice_matches_numpy():
    rng = np.random.default_rng(3)
    for _ in range(10):
        a, b = rng.random((8, 9, 10)) < 0.3, rng.random((8, 9, 10)) < 0.2
        assert dice_coefficient(a, b) == pytest.approx(2 * np.sum(a & b) / (np.sum(a) + np.sum(b)))
    empty = np.zeros((3, 3, 3), bool)
    assert dice_coefficient(empty, empty) == 1.0  # two empty masks: Dice 1 by definition
    assert dice_coefficient(empty, ~empty) == 0.0


def bootstrap_cases():
    rng = np.random.default_rng(11)
    cases = []
    for number in range(15):
        mask, predictions = random_case(rng, (1.0, 1.0, 1.5), np.eye(3))
        cases.append(match_case(str(number), predictions, reference_lesions(mask, MS), dice=float(rng.uniform())))
    return cases


def test_bootstrap_contains_point_estimate_and_is_deterministic():
    cases = bootstrap_cases()
    metrics, _ = summarize(cases, threshold=0.3, n_resamples=500, seed=5)
    for name in ("sensitivity", "precision", "f1", "fp_per_case", "cpm", "dice"):
        low, high = metrics.ci[name]
        assert low <= getattr(metrics, name) <= high, name
        assert low < high, name
    again, _ = summarize(cases, threshold=0.3, n_resamples=500, seed=5)
    assert again.ci == metrics.ci
    assert bootstrap_ci(cases, threshold=0.3, n_resamples=500, seed=5) == metrics.ci
    assert bootstrap_ci(cases, threshold=0.3, n_resamples=500, seed=6) != metrics.ci


def test_lesion_free_cases_only_add_false_positives():
    mask = volume((10, 10, 10))
    empty = ReferenceSet((), 3.0)
    cube(mask, (5, 5, 5))
    with_lesion = match_case("a", [Prediction((5, 5, 5), 0.9)], reference_lesions(mask, MS))
    lesion_free = match_case("b", [Prediction((1, 1, 1), 0.7)], empty)
    metrics, _ = summarize([with_lesion, lesion_free], n_resamples=0)
    assert (metrics.tp, metrics.fp, metrics.n_lesions) == (1, 1, 1)
    assert metrics.sensitivity == 1.0 and metrics.fp_per_case == 0.5


# ----------------------------------------------------------------- readers


def test_read_predictions_csv_and_markups(tmp_path):
    table = tmp_path / "c.lesions.csv"
    table.write_text("id,confidence_max,centroid_l,centroid_p,centroid_s_lps\n1,0.9,1.5,-2,3\n2,0.4,10,20,30\n")
    assert read_predictions(table) == [Prediction((1.5, -2.0, 3.0), 0.9, 1), Prediction((10.0, 20.0, 30.0), 0.4, 2)]
    markups = tmp_path / "c.mrk.json"
    markups.write_text(json.dumps({"markups": [{"type": "Fiducial", "coordinateSystem": "RAS", "controlPoints": [
        {"label": "L1", "description": "confidence 0.87, volume 120 mm3", "position": [1.0, 2.0, 3.0]},
        {"label": "manual", "position": [-4.0, 5.0, 6.0]},
    ]}]}))
    assert read_predictions(markups) == [Prediction((-1.0, -2.0, 3.0), 0.87, 1), Prediction((4.0, -5.0, 6.0), 1.0)]


def test_read_mask_seg_nrrd_3d_ras_and_layered(tmp_path):
    nrrd = pytest.importorskip("nrrd")
    data = np.zeros((4, 5, 6), np.uint8)  # NRRD axis order i, j, k
    data[1, 2, 3] = 2
    header = {"space": "right-anterior-superior", "space directions": np.diag([0.5, 1.0, 2.0]) @ rotation(10).T,
              "space origin": np.array([10.0, 20.0, 30.0]), "kinds": ["domain"] * 3}
    nrrd.write(str(tmp_path / "a.seg.nrrd"), data, header)
    mask = read_mask(tmp_path / "a.seg.nrrd", keep_labels=True)
    assert mask.array.shape == (6, 5, 4) and mask.array[3, 2, 1] == 2 and mask.array.sum() == 2
    np.testing.assert_allclose(mask.origin, (-10.0, -20.0, 30.0))
    np.testing.assert_allclose(mask.spacing, (0.5, 1.0, 2.0))
    np.testing.assert_allclose(mask.direction, np.diag([-1.0, -1.0, 1.0]) @ rotation(10))
    layered = np.zeros((2, 4, 5, 6), np.uint8)
    layered[0, 1, 1, 1] = 1
    layered[1, 1, 1, 1] = 3  # overlapping segments in two layers
    layered[1, 3, 4, 5] = 1
    header = {"space": "left-posterior-superior", "space directions": np.vstack([[np.nan] * 3, np.eye(3)]),
              "space origin": np.zeros(3), "kinds": ["list", "domain", "domain", "domain"]}
    nrrd.write(str(tmp_path / "b.seg.nrrd"), layered, header)
    mask = read_mask(tmp_path / "b.seg.nrrd")
    assert mask.array.shape == (6, 5, 4) and mask.array.sum() == 2 and mask.array[5, 4, 3] == 1
