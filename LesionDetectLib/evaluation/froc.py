"""Lesion-wise metrics: operating point, exact FROC curve, CPM, and bootstrap confidence intervals.

- Operating point (confidence ≥ threshold): sensitivity = TP / (TP + FN) over counted reference
  lesions; precision = TP / (TP + FP); F1 = 2·TP / (2·TP + FP + FN); FP per case = FP / cases. TP counts
  detected reference lesions, FP false-positive predictions (duplicates and ignored hits are neither).
- FROC: for every distinct confidence t (highest first), the sensitivity and the mean number of false
  positives per case when only predictions with confidence ≥ t are kept. Exact: no binning.
- CPM (LUNA16's competition performance metric): the mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and
  8 false positives per case. The sensitivity at a target rate is that of the operating point with the
  largest FP rate not above the target, i.e. the lowest threshold whose FP rate ≤ target (a step
  function; 0 when even the highest threshold exceeds the target; the final sensitivity when all
  predictions stay below the target). LUNA16's script instead interpolates linearly between
  operating points, which can give slightly higher values.
- Whole-case Dice: mean of the per-case Dice (two empty masks give 1) over cases with masks.
- Bootstrap: cases are resampled with replacement (fixed seed); every metric is recomputed on each
  resample from the pooled counts; the interval is the percentile interval of the resampled values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .matching import CaseMatch

CPM_FP_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
CI_METRICS: tuple[str, ...] = ("sensitivity", "precision", "f1", "fp_per_case", "cpm", "dice")


@dataclass(frozen=True, eq=False)
class FrocCurve:
    """Operating points for each distinct confidence, highest first; the first point (t = +inf) keeps nothing."""

    thresholds: np.ndarray
    detected: np.ndarray
    false_positives: np.ndarray
    n_lesions: int
    n_cases: int

    @property
    def sensitivity(self) -> np.ndarray:
        if self.n_lesions == 0:
            return np.full(len(self.thresholds), np.nan)
        return self.detected / self.n_lesions

    @property
    def fp_per_case(self) -> np.ndarray:
        return self.false_positives / self.n_cases


@dataclass(frozen=True)
class Metrics:
    """Everything reported for one evaluation (NaN where a metric is undefined, e.g. no lesions)."""

    threshold: float
    n_cases: int
    n_cases_without_lesions: int
    n_lesions: int
    n_ignored_lesions: int
    n_predictions: int
    tp: int
    fn: int
    fp: int
    duplicates: int
    ignored_predictions: int
    sensitivity: float
    precision: float
    f1: float
    fp_per_case: float
    cpm: float
    sensitivity_at_fp: dict[float, float]
    dice: float
    n_dice_cases: int
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    ci_level: float = 0.95
    n_resamples: int = 0
    seed: int = 0


def froc_curve(lesion_scores: np.ndarray, fp_scores: np.ndarray, n_cases: int) -> FrocCurve:
    """The exact FROC from the counted lesions' scores (−inf = never hit) and the false positives' confidences."""
    if n_cases <= 0:
        raise ValueError("a FROC curve needs at least one case")
    lesion_scores = np.asarray(lesion_scores, dtype=float)
    scores, is_tp = _entries(lesion_scores, np.asarray(fp_scores, dtype=float))
    thresholds, detected, false_positives = _cumulative(scores, is_tp, np.ones((1, len(scores))))
    return FrocCurve(thresholds, detected[0], false_positives[0], len(lesion_scores), n_cases)


def froc_from_cases(cases: Sequence[CaseMatch]) -> FrocCurve:
    """The exact FROC over all predictions of all cases."""
    lesion_scores = np.concatenate([case.lesion_scores for case in cases] or [np.empty(0)])
    fp_scores = np.concatenate([case.fp_scores for case in cases] or [np.empty(0)])
    return froc_curve(lesion_scores, fp_scores, len(cases))


def sensitivity_at(curve: FrocCurve, fp_rates: Sequence[float] = CPM_FP_RATES) -> np.ndarray:
    """Sensitivity of the operating point with the largest FP rate ≤ each target rate (see module doc)."""
    if curve.n_lesions == 0:
        return np.full(len(fp_rates), np.nan)
    return _step_sensitivity(
        curve.detected[None], curve.false_positives[None], np.array([curve.n_lesions]),
        np.array([curve.n_cases]), fp_rates,
    )[0]


def cpm(curve: FrocCurve, fp_rates: Sequence[float] = CPM_FP_RATES) -> float:
    """Competition performance metric: mean sensitivity at the target FP rates per case."""
    return float(np.mean(sensitivity_at(curve, fp_rates)))


def summarize(
    cases: Sequence[CaseMatch],
    threshold: float = 0.0,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[Metrics, FrocCurve]:
    """Operating-point metrics at ``threshold``, the FROC/CPM over all confidences, Dice, and bootstrap CIs."""
    if not cases:
        raise ValueError("nothing to evaluate: no cases")
    table = _CaseTable.build(cases, threshold)
    curve = froc_from_cases(cases)
    at_fp = sensitivity_at(curve)
    counts = [case.counts(threshold) for case in cases]
    point = _ratios(table.tp.sum(), table.fn.sum(), table.fp.sum(), len(cases))
    dice_valid = ~np.isnan(table.dice)
    metrics = Metrics(
        threshold=threshold,
        n_cases=len(cases),
        n_cases_without_lesions=int(np.sum(table.lesions == 0)),
        n_lesions=int(table.lesions.sum()),
        n_ignored_lesions=sum(c.ignored_lesions for c in counts),
        n_predictions=sum(c.predictions for c in counts),
        tp=int(table.tp.sum()),
        fn=int(table.fn.sum()),
        fp=int(table.fp.sum()),
        duplicates=sum(c.duplicates for c in counts),
        ignored_predictions=sum(c.ignored_predictions for c in counts),
        sensitivity=point["sensitivity"],
        precision=point["precision"],
        f1=point["f1"],
        fp_per_case=point["fp_per_case"],
        cpm=float(np.mean(at_fp)),
        sensitivity_at_fp={rate: float(value) for rate, value in zip(CPM_FP_RATES, at_fp, strict=True)},
        dice=float(table.dice[dice_valid].mean()) if dice_valid.any() else float("nan"),
        n_dice_cases=int(dice_valid.sum()),
        ci=_bootstrap(table, n_resamples, seed, level) if n_resamples > 0 else {},
        ci_level=level,
        n_resamples=n_resamples,
        seed=seed,
    )
    return metrics, curve


@dataclass(frozen=True, eq=False)
class _CaseTable:
    """Per-case counts at the threshold and the pooled FROC entries (sorted, highest confidence first)."""

    tp: np.ndarray
    fn: np.ndarray
    fp: np.ndarray
    lesions: np.ndarray
    dice: np.ndarray
    scores: np.ndarray
    is_tp: np.ndarray
    entry_case: np.ndarray

    @classmethod
    def build(cls, cases: Sequence[CaseMatch], threshold: float) -> _CaseTable:
        counts = [case.counts(threshold) for case in cases]
        parts = [
            (np.concatenate([case.lesion_scores, case.fp_scores]),
             np.concatenate([np.ones(len(case.lesion_scores)), np.zeros(len(case.fp_scores))]),
             np.full(len(case.lesion_scores) + len(case.fp_scores), index))
            for index, case in enumerate(cases)
        ]
        scores, is_tp, entry_case = (np.concatenate(column) for column in zip(*parts, strict=True))
        keep = np.isfinite(scores)
        order = np.argsort(-scores[keep], kind="stable")
        return cls(
            tp=np.array([c.tp for c in counts]),
            fn=np.array([c.fn for c in counts]),
            fp=np.array([c.fp for c in counts]),
            lesions=np.array([c.lesions for c in counts]),
            dice=np.array([np.nan if case.dice is None else case.dice for case in cases], dtype=float),
            scores=scores[keep][order],
            is_tp=is_tp[keep][order],
            entry_case=entry_case[keep][order].astype(int),
        )


def bootstrap_ci(
    cases: Sequence[CaseMatch],
    threshold: float = 0.0,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each metric in ``CI_METRICS`` over case resamples (fixed seed)."""
    return _bootstrap(_CaseTable.build(cases, threshold), n_resamples, seed, level)


def _bootstrap(
    table: _CaseTable, n_resamples: int, seed: int, level: float, chunk: int = 200
) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(seed)
    n_cases = len(table.tp)
    samples: dict[str, list[np.ndarray]] = {name: [] for name in CI_METRICS}
    dice_valid = ~np.isnan(table.dice)
    dice_values = np.where(dice_valid, table.dice, 0.0)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        drawn = rng.integers(0, n_cases, size=(size, n_cases))
        weights = np.stack([np.bincount(row, minlength=n_cases) for row in drawn]).astype(float)
        ratios = _ratios(weights @ table.tp, weights @ table.fn, weights @ table.fp, n_cases)
        for name, values in ratios.items():
            samples[name].append(values)
        _, detected, false_positives = _cumulative(
            table.scores, table.is_tp, weights[:, table.entry_case]
        )
        lesions = weights @ table.lesions
        with np.errstate(invalid="ignore", divide="ignore"):
            at_fp = _step_sensitivity(
                detected, false_positives, lesions, np.full(size, n_cases), CPM_FP_RATES
            )
            samples["cpm"].append(np.where(lesions > 0, at_fp.mean(axis=1), np.nan))
            samples["dice"].append((weights @ dice_values) / (weights @ dice_valid))
    alpha = 100.0 * (1.0 - level) / 2.0
    intervals = {}
    for name in CI_METRICS:
        values = np.concatenate(samples[name])
        values = values[~np.isnan(values)]
        if len(values) == 0:
            intervals[name] = (float("nan"), float("nan"))
        else:
            low, high = np.percentile(values, [alpha, 100.0 - alpha])
            intervals[name] = (float(low), float(high))
    return intervals


def _ratios(tp, fn, fp, n_cases: int) -> dict[str, np.ndarray | float]:
    """Sensitivity, precision, F1 and FP per case from (possibly arrays of) pooled counts; NaN if undefined."""
    tp, fn, fp = (np.asarray(x, dtype=float) for x in (tp, fn, fp))
    with np.errstate(invalid="ignore", divide="ignore"):
        result = {
            "sensitivity": np.where(tp + fn > 0, tp / (tp + fn), np.nan),
            "precision": np.where(tp + fp > 0, tp / (tp + fp), np.nan),
            "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan),
            "fp_per_case": fp / n_cases,
        }
    return {key: (float(value) if value.ndim == 0 else value) for key, value in result.items()}


def _entries(lesion_scores: np.ndarray, fp_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FROC entries sorted by confidence, highest first: lesion scores (is_tp 1) and FP confidences (0)."""
    scores = np.concatenate([lesion_scores, fp_scores])
    is_tp = np.concatenate([np.ones(len(lesion_scores)), np.zeros(len(fp_scores))])
    keep = np.isfinite(scores)
    order = np.argsort(-scores[keep], kind="stable")
    return scores[keep][order], is_tp[keep][order]


def _cumulative(
    scores: np.ndarray, is_tp: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds (inf first, then each distinct score) and the weighted TP/FP counts kept at each one.

    ``weights`` is (resamples, entries); returns thresholds (G,), detected and false positives (resamples, G).
    """
    last_of_group = np.append(scores[1:] != scores[:-1], True) if len(scores) else np.zeros(0, bool)
    ends = np.flatnonzero(last_of_group)
    detected = np.cumsum(weights * is_tp, axis=1)[:, ends]
    false_positives = np.cumsum(weights * (1.0 - is_tp), axis=1)[:, ends]
    start = np.zeros((weights.shape[0], 1))
    return (
        np.concatenate([[np.inf], scores[ends]]),
        np.concatenate([start, detected], axis=1),
        np.concatenate([start, false_positives], axis=1),
    )


def _step_sensitivity(
    detected: np.ndarray,
    false_positives: np.ndarray,
    n_lesions: np.ndarray,
    n_cases: np.ndarray,
    fp_rates: Sequence[float],
) -> np.ndarray:
    """(resamples, targets) sensitivity at the last operating point whose FP count ≤ target · cases."""
    result = np.empty((detected.shape[0], len(fp_rates)))
    rows = np.arange(detected.shape[0])
    for column, rate in enumerate(fp_rates):
        allowed = false_positives <= (rate * np.asarray(n_cases, dtype=float))[:, None] + 1e-9
        last = allowed.sum(axis=1) - 1  # FP counts never decrease along the curve; point 0 has none
        result[:, column] = detected[rows, last] / n_lesions
    return result
