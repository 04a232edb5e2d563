"""`evaluation.froc`: FROC curve, CPM, the operating point and its bootstrap intervals, hand-computed and
against brute force and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from evaluation_cases import (
    MS,
    bootstrap_cases,
    brute_force_hits,
    brute_force_lesions,
    cube,
    hand_cases,
    random_case,
    rotation,
    volume,
)

from LesionDetectLib.evaluation import (
    Prediction,
    ReferenceSet,
    bootstrap_ci,
    cpm,
    froc_curve,
    froc_from_cases,
    match_case,
    reference_lesions,
    resolve_rule,
    sensitivity_at,
    summarize,
)


def test_hand_computed_froc_curve_and_cpm():
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


def test_hand_computed_operating_point():
    cases = hand_cases()
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


def test_cpm_of_an_empty_curve_is_nan():
    empty = froc_curve(np.array([]), np.array([]), n_cases=2)
    assert math.isnan(cpm(empty))


def test_cpm_is_zero_when_no_lesion_is_ever_detected():
    never = froc_curve(np.array([-np.inf, -np.inf]), np.array([0.5]), n_cases=1)
    assert cpm(never) == 0.0


def test_a_tp_and_an_fp_of_the_same_confidence_enter_the_curve_together():
    # ties: a TP and an FP with the same confidence enter the curve together
    tied = froc_curve(np.array([0.5]), np.array([0.5]), n_cases=4)
    np.testing.assert_allclose(tied.fp_per_case, [0, 0.25])
    np.testing.assert_allclose(sensitivity_at(tied, [0.125, 0.25]), [0, 1])


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


def test_bootstrap_interval_contains_the_point_estimate():
    cases = bootstrap_cases()
    metrics, _ = summarize(cases, threshold=0.3, n_resamples=500, seed=5)
    for name in ("sensitivity", "precision", "f1", "fp_per_case", "cpm", "dice"):
        low, high = metrics.ci[name]
        assert low <= getattr(metrics, name) <= high, name
        assert low < high, name


def test_bootstrap_is_deterministic_for_a_seed():
    cases = bootstrap_cases()
    metrics, _ = summarize(cases, threshold=0.3, n_resamples=500, seed=5)
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
