"""The ``evaluate`` entry: gather predictions and references for many cases, match them, summarize.

Where the cases and their references come from: `cases`; how each case's predictions are found and read:
`predictions`. Cases named by ``lesion_free`` have no reference lesions: they only contribute false positives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..io import read_mask
from ..volume import Volume
from .cases import CaseSource, lesion_free_sources, missing_labels, reference_sources
from .froc import FrocCurve, Metrics, summarize
from .matching import CaseMatch, Prediction, dice_coefficient, match_case
from .predictions import locate_predictions, prediction_index, read_predictions, unused_predictions
from .reference import LesionRule, ReferenceSet, reference_lesions, resolve_rule, sphere_lesions


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Matched cases, metrics and FROC of one evaluation, with the rule and criterion used."""

    cases: tuple[CaseMatch, ...]
    metrics: Metrics
    curve: FrocCurve
    rule: LesionRule
    criterion: str
    reference: str
    predictions: str
    warnings: tuple[str, ...] = ()


def evaluate(
    pred_dir: str | Path,
    ref: str | Path,
    *,
    rule: LesionRule | str | None = None,
    threshold: float = 0.0,
    base_dir: str | Path | None = None,
    split: str = "all",
    filters: Sequence[tuple[str, str]] = (),
    lesion_free: Iterable[str] = (),
    allow_missing: bool = False,
    n_resamples: int = 1000,
    seed: int = 0,
) -> EvaluationResult:
    """Evaluate the predictions in ``pred_dir`` against the reference ``ref`` (formats: `cases`, `predictions`).

    ``rule`` defaults to ``glioma`` for masks and ``luna16`` for a CSV; ``threshold`` is the confidence of
    the operating point (the FROC uses every prediction). Raises ``DatasetError`` listing every problem.
    """
    pred_dir, ref = Path(pred_dir), Path(ref)
    if not pred_dir.is_dir():
        raise DatasetError(f"prediction folder not found: {pred_dir}")
    sources = reference_sources(ref, base_dir=base_dir, split=split, filters=filters)
    spheres = ref.suffix.lower() == ".csv"
    sources += lesion_free_sources(lesion_free, {s.case for s in sources}, spheres)
    if not sources:
        chosen = "".join(f", {key}={value}" for key, value in filters)
        raise DatasetError(f"no cases found in {ref} (split {split}{chosen})")
    if rule is None or isinstance(rule, str):
        rule = resolve_rule(rule or ("luna16" if spheres else "glioma"))
    index = prediction_index(pred_dir)
    located, warnings, problems = locate_predictions(sources, index, pred_dir, allow_missing)
    problems = missing_labels(sources) + problems
    if problems:
        raise DatasetError("; ".join(problems))
    cases = tuple(
        evaluate_case(source, files.get("csv") or files.get("mrk"), files.get("seg"), rule, threshold)
        for source, files in zip(sources, located, strict=True)
    )
    left_out = {s.case for s in reference_sources(ref, base_dir=base_dir)} if filters or split != "all" else set()
    warnings += unused_predictions(index, located, left_out, pred_dir)
    metrics, curve = summarize(cases, threshold=threshold, n_resamples=n_resamples, seed=seed)
    return EvaluationResult(
        cases, metrics, curve, rule, rule.describe(spheres=spheres), str(ref), str(pred_dir), tuple(warnings)
    )


def evaluate_case(
    source: CaseSource, predictions_path: Path | None, seg_path: Path | None, rule: LesionRule, threshold: float
) -> CaseMatch:
    """Read one case's files and match them.

    Dice needs a predicted mask and a reference mask (a lesion-free case's is empty); none for CSV references.
    """
    predictions = read_predictions(predictions_path) if predictions_path else []
    mask = read_mask(source.label) if source.label else None
    if source.spheres is not None:
        reference = sphere_lesions(source.spheres, rule)
    elif mask is not None:
        reference = reference_lesions(mask, rule)
    else:
        reference = ReferenceSet((), rule.hit_distance_mm)
    dice = ref_volume = pred_volume = None
    if seg_path is not None and source.spheres is None and (mask is not None or source.lesion_free):
        labels = _keep_confident(read_mask(seg_path, keep_labels=True), predictions, threshold)
        predicted = labels.with_array((labels.array > 0).astype(np.uint8))
        if mask is None:
            reference_mask = np.zeros(predicted.array.shape, dtype=bool)
            ref_volume = 0.0
        else:
            predicted = _on_grid(predicted, mask)
            reference_mask = mask.array > 0
            ref_volume = float(reference_mask.sum() * mask.voxel_volume_mm3)
        pred_volume = float((predicted.array > 0).sum() * predicted.voxel_volume_mm3)
        dice = dice_coefficient(predicted.array > 0, reference_mask)
    return match_case(source.case, predictions, reference, dice, ref_volume, pred_volume)


def _on_grid(moving: Volume, fixed: Volume) -> Volume:
    """``moving`` on ``fixed``'s voxel grid (nearest neighbour; outside is 0); unchanged if already there."""
    if moving.same_geometry(fixed, tolerance=1e-4):
        return moving
    import SimpleITK as sitk

    resampled = sitk.Resample(
        moving.to_sitk(), fixed.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
    )
    return fixed.with_array(sitk.GetArrayFromImage(resampled), name=moving.name)


def _keep_confident(mask: Volume, predictions: Sequence[Prediction], threshold: float) -> Volume:
    """Drop from a label map the lesions whose confidence is below ``threshold``.

    Works when the label values are the lesion ids of the table (our own writer); otherwise the mask
    is used whole.
    """
    dropped = {p.id for p in predictions if p.confidence < threshold and p.id is not None}
    values = set(np.unique(mask.array).tolist()) - {0}
    if not dropped or not values <= {p.id for p in predictions}:
        return mask
    return mask.with_array(np.where(np.isin(mask.array, sorted(dropped)), 0, mask.array))
