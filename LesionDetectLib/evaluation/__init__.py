"""Lesion-wise evaluation: reference lesions under a rule, matching, FROC/CPM, Dice, bootstrap CIs, reports.

Typical use::

    from LesionDetectLib.evaluation import evaluate, write_report
    result = evaluate("predictions/", "labels/", rule="glioma")
    write_report(result, "evaluation/")

In memory (e.g. during training): ``reference_lesions(mask, rule)`` → ``match_case(case, predictions,
reference, dice)`` for each case → ``summarize(cases, threshold)``.
"""

from __future__ import annotations

from .froc import (
    CPM_FP_RATES,
    FrocCurve,
    Metrics,
    bootstrap_ci,
    cpm,
    froc_curve,
    froc_from_cases,
    sensitivity_at,
    summarize,
)
from .matching import CaseMatch, LesionOutcome, Prediction, PredictionOutcome, dice_coefficient, match_case
from .predictions import read_predictions
from .reference import (
    RULES,
    LesionRule,
    ReferenceLesion,
    ReferenceSet,
    read_sphere_csv,
    reference_lesions,
    resolve_rule,
    sphere_lesions,
)
from .report import format_table, plot_froc, summary_dict, write_report
from .run import EvaluationResult, evaluate

__all__ = [
    "CPM_FP_RATES", "RULES", "CaseMatch", "EvaluationResult", "FrocCurve", "LesionOutcome", "LesionRule",
    "Metrics", "Prediction", "PredictionOutcome", "ReferenceLesion", "ReferenceSet", "bootstrap_ci", "cpm",
    "dice_coefficient", "evaluate", "format_table", "froc_curve", "froc_from_cases", "match_case", "plot_froc",
    "read_predictions", "read_sphere_csv", "reference_lesions", "resolve_rule", "sensitivity_at",
    "sphere_lesions", "summarize", "summary_dict", "write_report",
]
