"""Lesion-wise matching of predicted lesions (centroid + confidence) to reference lesions, and Dice.

Conventions (as LUNA16's evaluation and BraTS's lesion-wise metrics):
- a prediction *hits* a reference lesion when its centroid is within the rule's hit distance of it;
- each counted reference lesion is detected at most once: its score is the highest confidence among
  the predictions hitting it, and that prediction is its true positive (``tp``);
- further predictions hitting an already-hit counted lesion are ``duplicate``: neither true nor false
  positives (a lesion split into pieces by the detector is not punished);
- a prediction hitting only ignored (too small) lesions is ``ignored``: it counts neither way;
- every other prediction is a false positive (``fp``).
A prediction within reach of two counted lesions can be the true positive of both (LUNA16 does the same).
These statuses do not depend on the confidence threshold: at threshold t, only predictions with
confidence ≥ t are kept, and a lesion is detected when its score is ≥ t.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .reference import ReferenceLesion, ReferenceSet, Triple

STATUSES = ("tp", "duplicate", "ignored", "fp")


@dataclass(frozen=True)
class Prediction:
    """One predicted lesion: centroid in LPS mm and confidence (``id`` as in the lesion table, if known)."""

    centroid_lps: Triple
    confidence: float
    id: int | None = None

    @classmethod
    def from_lesion(cls, lesion) -> Prediction:
        """From a detected ``lesions.Lesion`` (its LPS centroid, ``confidence_max`` and id)."""
        return cls(tuple(float(v) for v in lesion.centroid_lps), float(lesion.confidence_max), lesion.id)


@dataclass(frozen=True)
class PredictionOutcome:
    """How one prediction was counted; ``lesion_id`` is the lesion it hits (None for a false positive)."""

    prediction: Prediction
    status: str
    lesion_id: int | None
    distance_mm: float | None  # to the nearest reference lesion (None when the case has none)


@dataclass(frozen=True)
class LesionOutcome:
    """One reference lesion: its score (highest confidence hitting it, None if never hit) and that hit."""

    lesion: ReferenceLesion
    score: float | None
    prediction_id: int | None
    distance_mm: float | None

    def detected(self, threshold: float) -> bool:
        return self.score is not None and self.score >= threshold


@dataclass(frozen=True)
class CaseCounts:
    """Counts of one case at one confidence threshold."""

    lesions: int
    ignored_lesions: int
    predictions: int
    tp: int
    fn: int
    fp: int
    duplicates: int
    ignored_predictions: int


@dataclass(frozen=True, eq=False)
class CaseMatch:
    """The matching of one case, plus its whole-case Dice and mask volumes when masks were available."""

    case: str
    lesions: tuple[LesionOutcome, ...]
    predictions: tuple[PredictionOutcome, ...]
    dice: float | None = None
    reference_volume_mm3: float | None = None
    predicted_volume_mm3: float | None = None

    @property
    def lesion_scores(self) -> np.ndarray:
        """Scores of the counted lesions (−inf where never hit)."""
        return np.array([
            -np.inf if outcome.score is None else outcome.score
            for outcome in self.lesions if not outcome.lesion.ignored
        ], dtype=float)

    @property
    def fp_scores(self) -> np.ndarray:
        """Confidences of the false-positive predictions."""
        return np.array(
            [o.prediction.confidence for o in self.predictions if o.status == "fp"], dtype=float
        )

    def counts(self, threshold: float = 0.0) -> CaseCounts:
        """TP/FN/FP and other counts keeping only predictions with confidence ≥ ``threshold``."""
        kept = [o.status for o in self.predictions if o.prediction.confidence >= threshold]
        counted = [o for o in self.lesions if not o.lesion.ignored]
        tp = sum(o.detected(threshold) for o in counted)
        return CaseCounts(
            lesions=len(counted),
            ignored_lesions=len(self.lesions) - len(counted),
            predictions=len(kept),
            tp=tp,
            fn=len(counted) - tp,
            fp=kept.count("fp"),
            duplicates=kept.count("duplicate"),
            ignored_predictions=kept.count("ignored"),
        )


def match_case(
    case: str,
    predictions: Sequence[Prediction],
    reference: ReferenceSet,
    dice: float | None = None,
    reference_volume_mm3: float | None = None,
    predicted_volume_mm3: float | None = None,
) -> CaseMatch:
    """Match one case's predictions to its reference lesions (see the module docstring)."""
    lesions = reference.lesions
    points = np.array([p.centroid_lps for p in predictions], dtype=float).reshape(-1, 3)
    distance = reference.distances(points)
    hits = distance <= reference.hit_distance_mm + 1e-9
    counted = np.array([not lesion.ignored for lesion in lesions], dtype=bool)
    # highest confidence first; ties keep the input order
    order = sorted(range(len(predictions)), key=lambda n: -predictions[n].confidence)
    best: dict[int, int] = {}  # lesion column -> prediction index of its true positive
    for n in order:
        for column in np.flatnonzero(hits[n] & counted):
            best.setdefault(int(column), n)
    tp_of = {}
    for column, n in best.items():
        tp_of.setdefault(n, []).append(column)
    outcomes = [
        _prediction_outcome(predictions[n], distance[n], hits[n], counted, tp_of.get(n), lesions)
        for n in range(len(predictions))
    ]
    lesion_outcomes = tuple(
        LesionOutcome(
            lesion=lesion,
            score=predictions[best[column]].confidence if column in best else None,
            prediction_id=_prediction_id(predictions, best[column]) if column in best else None,
            distance_mm=float(distance[best[column], column]) if column in best else None,
        )
        for column, lesion in enumerate(lesions)
    )
    return CaseMatch(
        case, lesion_outcomes, tuple(outcomes), dice, reference_volume_mm3, predicted_volume_mm3
    )


def _prediction_outcome(
    prediction: Prediction,
    distance: np.ndarray,
    hits: np.ndarray,
    counted: np.ndarray,
    tp_columns: list[int] | None,
    lesions: Sequence[ReferenceLesion],
) -> PredictionOutcome:
    nearest = float(distance.min()) if len(distance) else None
    if tp_columns:
        status, columns = "tp", tp_columns
    elif (hits & counted).any():
        status, columns = "duplicate", np.flatnonzero(hits & counted)
    elif hits.any():
        status, columns = "ignored", np.flatnonzero(hits)
    else:
        return PredictionOutcome(prediction, "fp", None, nearest)
    column = min(columns, key=lambda c: distance[c])
    return PredictionOutcome(prediction, status, lesions[column].id, nearest)


def _prediction_id(predictions: Sequence[Prediction], index: int) -> int:
    """The prediction's table id, or its 1-based position when it has none."""
    identifier = predictions[index].id
    return index + 1 if identifier is None else identifier


def dice_coefficient(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Dice of two binary masks on the same grid: 2|P∩R| / (|P| + |R|); two empty masks give 1."""
    predicted = np.asarray(predicted, dtype=bool)
    reference = np.asarray(reference, dtype=bool)
    total = int(predicted.sum()) + int(reference.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(predicted, reference).sum()) / total
