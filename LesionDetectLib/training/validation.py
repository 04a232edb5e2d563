"""Validation during training, through the functions `detect` uses: each validation volume is prepared once
(`preprocess.prepare_input`, every channel aligned onto the first one's grid), then predicted by
`infer.model_grid_probability` (sliding window) → `preprocess.to_input_grid` → `lesions.from_probability` with the
bundle's own spec; the predictions are matched to the reference lesions with the `evaluation` package
(lesion-wise sensitivity, precision, F1, FP per case, CPM, pooled over all ranks) and whole-case Dice is computed
on the input grid. `selection_score` ranks validations for choosing the best checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import infer, lesions, preprocess
from ..model_spec import ModelSpec
from ..volume import Volume
from . import distributed
from .dataset import Case

METRIC_NAMES = ("dice", "sensitivity", "precision", "f1", "fp_per_case", "cpm")
VALIDATION_MAX_LESIONS = 200  # per case: bounds the cost of an untrained network's noise
LESION_TYPE_RULES = {"glioma": "glioma", "glioblastoma": "glioma", "ms": "ms", "multiple sclerosis": "ms",
                     "ct-tumour": "ct-tumour", "tumour": "ct-tumour", "tumor": "ct-tumour"}


@dataclass(frozen=True, eq=False)
class ValidationCase:
    """A validation case ready for inference: the input volume, the network's input, the reference."""

    case: Case
    volume: Volume
    model_input: preprocess.ModelInput
    reference: Any  # evaluation.ReferenceSet
    mask: np.ndarray  # reference lesion mask on the input grid


def rule_for(case: Case, default: str) -> str:
    """The lesion rule of a case: from its ``lesion_type`` tag when known, else ``default``."""
    return LESION_TYPE_RULES.get((case.lesion_type or "").strip().lower(), default)


def prepare_validation(cases: Sequence[Case], spec: ModelSpec, default_rule: str) -> list[ValidationCase]:
    """Read and prepare validation cases once (exactly as `detect` prepares its input, every channel aligned onto
    the first one's grid)."""
    from ..channels import model_input_of
    from ..evaluation import RULES, reference_lesions
    from ..io import read_mask
    from .channel_layout import read_channels

    prepared = []
    for case in cases:
        channels, volume = read_channels(case.channels or [("image", case.image)])
        mask = volume.with_array(read_mask(case.label).array)
        reference = reference_lesions(mask, RULES[rule_for(case, default_rule)])
        prepared.append(ValidationCase(case, volume, model_input_of(channels, spec), reference, mask.array > 0))
    return prepared


def predict_case(network, item: ValidationCase, spec: ModelSpec, device: str):
    """(lesions, label map) for one case, by the inference path of `detect`."""
    probability, _ = infer.model_grid_probability(
        lambda _device: network, item.model_input, tuple(spec.patch_size), spec.overlap, spec.batch_size, device,
        flip_axes=spec.flip_axes,
    )
    probability = preprocess.to_input_grid(probability, item.model_input.grid, item.volume)
    return lesions.from_probability(
        probability, item.volume, spec.threshold, spec.min_lesion_mm3, VALIDATION_MAX_LESIONS,
        measure_surfaces=False,
    )


def validate(network, items: Sequence[ValidationCase], spec: ModelSpec, context: distributed.Context) -> dict[str, Any]:
    """Lesion-wise metrics and Dice over all ranks' validation cases (every rank gets the result)."""
    from ..evaluation import Prediction, dice_coefficient, match_case

    network = distributed.unwrap(network)
    network.eval()
    matches = []
    for item in items:
        found, label_map = predict_case(network, item, spec, context.device)
        predictions = [Prediction(lesion.centroid_lps, lesion.confidence_max, lesion.id) for lesion in found]
        dice = dice_coefficient(label_map > 0, item.mask)
        matches.append((item.case.lesion_type, match_case(item.case.id, predictions, item.reference, dice=dice)))
    network.train()
    gathered = [pair for part in distributed.gather(matches, context) for pair in part]
    return summarize_matches(gathered, spec.threshold)


def summarize_matches(matches: list, threshold: float) -> dict[str, Any]:
    """Pooled metrics (and per lesion type when the cases have several)."""
    from ..evaluation import summarize

    def metrics_of(cases) -> dict[str, Any]:
        metrics, _ = summarize(cases, threshold=threshold, n_resamples=0)
        values = {name: float(getattr(metrics, name)) for name in METRIC_NAMES}
        counts = {"cases": metrics.n_cases, "lesions": metrics.n_lesions, "tp": metrics.tp, "fp": metrics.fp,
                  "fn": metrics.fn}
        return {**values, **counts}

    if not matches:
        return {}
    result = metrics_of([match for _, match in matches])
    types = sorted({kind or "" for kind, _ in matches})
    if len(types) > 1:
        result["by_lesion_type"] = {
            kind or "untagged": metrics_of([match for k, match in matches if (k or "") == kind]) for kind in types
        }
    return result


def selection_score(metrics: dict[str, Any], metric: str) -> tuple[float, float]:
    """Sort key of a validation: the chosen metric, then Dice (NaN counts as worst)."""

    def value(name: str) -> float:
        number = metrics.get(name, float("nan"))
        return number if number is not None and math.isfinite(number) else -math.inf

    return (value(metric), value("dice"))


def describe(epoch: int, loss: float, metrics: dict[str, Any]) -> str:
    """The line that reports an epoch: its training loss, and its validation metrics when it validated."""
    text = f"epoch {epoch}: loss {loss:.4f}"
    if metrics:
        text += (f"; validation Dice {metrics['dice']:.3f}, sensitivity {metrics['sensitivity']:.3f}, "
                 f"precision {metrics['precision']:.3f}, F1 {metrics['f1']:.3f}, "
                 f"FP/case {metrics['fp_per_case']:.2f} ({metrics['lesions']} lesions, {metrics['cases']} cases)")
    return text
