"""Evaluation outputs: ``summary.json``, ``per_case.csv``, ``per_lesion.csv``, ``froc.csv``, ``froc.png``, a table.

The files are written as one set (``writers.atomic.staged_outputs``): all of a report's files, or none of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..csv_cells import csv_text
from ..errors import OutputError
from ..writers.atomic import atomic_output, staged_outputs, write_staged
from .froc import CPM_FP_RATES, FrocCurve, cpm, sensitivity_at
from .run import EvaluationResult

PER_CASE_COLUMNS = (
    "case", "reference_lesions", "ignored_lesions", "predictions", "tp", "fn", "fp", "duplicates",
    "ignored_predictions", "sensitivity", "dice", "reference_volume_mm3", "predicted_volume_mm3",
)
PER_LESION_COLUMNS = (
    "case", "kind", "id", "volume_mm3", "centroid_l", "centroid_p", "centroid_s_lps", "confidence",
    "counted", "status", "matched_id", "distance_mm",
)
FROC_COLUMNS = ("threshold", "sensitivity", "fp_per_case", "detected_lesions", "false_positives")
CONVENTIONS = {
    "duplicates": "A reference lesion counts once: the highest-confidence prediction hitting it is its true "
                  "positive; further predictions hitting it are neither true nor false positives (LUNA16/BraTS).",
    "ignored": "A prediction hitting only ignored (too small) reference lesions counts neither way.",
    "precision": "TP / (TP + FP), TP = detected reference lesions, FP = false-positive predictions.",
    "froc": "Exact: one operating point per distinct confidence; FP rate = false positives / cases.",
    "cpm": "Mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4, 8 FP per case; at each target the sensitivity of the "
           "operating point with the largest FP rate not above it (step function, no linear interpolation).",
    "dice": "Whole-case Dice of the predicted and reference masks; two empty masks give Dice 1.",
    "bootstrap": "Percentile interval over resamples of the cases (with replacement, fixed seed).",
}


def write_report(result: EvaluationResult, out_dir: str | Path, plot: bool = True) -> dict[str, Path]:
    """Write all outputs into ``out_dir`` (created if needed); returns their paths by name."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out}: {exc.strerror or exc}") from exc
    threshold = result.metrics.threshold
    paths = {
        "summary": out / "summary.json",
        "per_case": out / "per_case.csv",
        "per_lesion": out / "per_lesion.csv",
        "froc_csv": out / "froc.csv",
        "froc_png": out / "froc.png",
    }
    texts = {
        "summary": json.dumps(summary_dict(result), indent=2) + "\n",
        "per_case": _report_csv(PER_CASE_COLUMNS, per_case_rows(result, threshold)),
        "per_lesion": _report_csv(PER_LESION_COLUMNS, per_lesion_rows(result, threshold)),
        "froc_csv": _report_csv(FROC_COLUMNS, froc_rows(result.curve)),
    }
    with staged_outputs(out) as staging:  # all files of this report, or none (a stale froc.png goes too)
        for name, text in texts.items():
            write_staged(staging, paths[name], lambda path, text=text: path.write_text(text, encoding="utf-8", newline=""))
        if plot:
            write_staged(staging, paths["froc_png"],
                         lambda path: save_froc(result.curve, path, title=f"FROC — rule {result.rule.name}"))
        else:
            staging.remove(paths["froc_png"])
    return paths if plot else {name: path for name, path in paths.items() if name != "froc_png"}


def summary_dict(result: EvaluationResult) -> dict:
    """Everything of ``summary.json`` (NaN written as null)."""
    m, rule = result.metrics, result.rule

    def metric(name: str, value: float) -> dict:
        return {"value": value, f"ci{round(m.ci_level * 100)}": list(m.ci.get(name, (None, None)))}

    summary = {
        "criterion": result.criterion,
        "rule": {"name": rule.name, "merge_distance_mm": rule.merge_distance_mm,
                 "min_volume_mm3": rule.min_volume_mm3, "hit_distance_mm": rule.hit_distance_mm},
        "reference": result.reference,
        "predictions": result.predictions,
        "threshold": m.threshold,
        "counts": {
            "cases": m.n_cases, "cases_without_lesions": m.n_cases_without_lesions,
            "reference_lesions": m.n_lesions, "ignored_lesions": m.n_ignored_lesions,
            "predictions": m.n_predictions, "tp": m.tp, "fn": m.fn, "fp": m.fp,
            "duplicates": m.duplicates, "ignored_predictions": m.ignored_predictions,
            "dice_cases": m.n_dice_cases,
        },
        "metrics": {
            "sensitivity": metric("sensitivity", m.sensitivity),
            "precision": metric("precision", m.precision),
            "f1": metric("f1", m.f1),
            "fp_per_case": metric("fp_per_case", m.fp_per_case),
            "cpm": metric("cpm", m.cpm),
            "dice": metric("dice", m.dice),
        },
        "froc_sensitivity_at_fp_per_case": {f"{rate:g}": value for rate, value in m.sensitivity_at_fp.items()},
        "bootstrap": {"resamples": m.n_resamples, "seed": m.seed, "level": m.ci_level},
        "conventions": CONVENTIONS,
        "warnings": list(result.warnings),
    }
    return _without_nan(summary)


def per_case_rows(result: EvaluationResult, threshold: float) -> list[dict]:
    """One row per case at the operating threshold."""
    rows = []
    for case in result.cases:
        counts = case.counts(threshold)
        rows.append({
            "case": case.case,
            "reference_lesions": counts.lesions,
            "ignored_lesions": counts.ignored_lesions,
            "predictions": counts.predictions,
            "tp": counts.tp, "fn": counts.fn, "fp": counts.fp,
            "duplicates": counts.duplicates, "ignored_predictions": counts.ignored_predictions,
            "sensitivity": counts.tp / counts.lesions if counts.lesions else None,
            "dice": case.dice,
            "reference_volume_mm3": case.reference_volume_mm3,
            "predicted_volume_mm3": case.predicted_volume_mm3,
        })
    return rows


def per_lesion_rows(result: EvaluationResult, threshold: float) -> list[dict]:
    """One row per reference lesion (status tp/fn/ignored at the threshold) and per prediction.

    A prediction's ``status`` (tp/duplicate/ignored/fp) does not depend on the threshold; ``counted``
    says whether its confidence reaches it.
    """
    rows = []
    for case in result.cases:
        for outcome in case.lesions:
            lesion = outcome.lesion
            status = "ignored" if lesion.ignored else ("tp" if outcome.detected(threshold) else "fn")
            rows.append(_row(case.case, "reference", lesion.id, lesion.centroid_lps, {
                "volume_mm3": lesion.volume_mm3, "confidence": outcome.score, "counted": not lesion.ignored,
                "status": status, "matched_id": outcome.prediction_id, "distance_mm": outcome.distance_mm,
            }))
        for number, outcome in enumerate(case.predictions, start=1):
            prediction = outcome.prediction
            identifier = number if prediction.id is None else prediction.id
            rows.append(_row(case.case, "prediction", identifier, prediction.centroid_lps, {
                "confidence": prediction.confidence, "counted": prediction.confidence >= threshold,
                "status": outcome.status, "matched_id": outcome.lesion_id, "distance_mm": outcome.distance_mm,
            }))
    return rows


def froc_rows(curve: FrocCurve) -> list[dict]:
    """The FROC operating points, highest threshold first."""
    return [
        {"threshold": t, "sensitivity": s, "fp_per_case": f, "detected_lesions": int(d), "false_positives": int(n)}
        for t, s, f, d, n in zip(curve.thresholds, curve.sensitivity, curve.fp_per_case,
                                 curve.detected, curve.false_positives, strict=True)
    ]


def format_table(result: EvaluationResult) -> str:
    """A short human-readable summary."""
    m = result.metrics
    level = f"{round(m.ci_level * 100)}% CI"
    lines = [
        result.criterion,
        f"cases {m.n_cases} ({m.n_cases_without_lesions} without lesions) · reference lesions {m.n_lesions} "
        f"(+{m.n_ignored_lesions} ignored) · predictions {m.n_predictions} at confidence ≥ {m.threshold:g}",
        f"TP {m.tp} · FN {m.fn} · FP {m.fp} · duplicates {m.duplicates} · ignored hits {m.ignored_predictions}",
        "",
        f"{'metric':<16}{'value':>8}   {level}",
    ]
    for label, name, value in (
        ("sensitivity", "sensitivity", m.sensitivity), ("precision", "precision", m.precision),
        ("F1", "f1", m.f1), ("FP per case", "fp_per_case", m.fp_per_case), ("CPM", "cpm", m.cpm),
        (f"Dice (n={m.n_dice_cases})", "dice", m.dice),
    ):
        low, high = m.ci.get(name, (math.nan, math.nan))
        interval = "" if math.isnan(low) else f"[{low:.3f}, {high:.3f}]"
        lines.append(f"{label:<16}{_fmt(value):>8}   {interval}")
    lines.append("FROC sensitivity at FP/case " + "  ".join(
        f"{rate:g}: {_fmt(value)}" for rate, value in m.sensitivity_at_fp.items()
    ))
    return "\n".join(lines)


def plot_froc(curve: FrocCurve, path: str | Path, title: str = "FROC") -> Path:
    """Save the FROC (sensitivity vs FP per case, log₂ axis from 1/8) as a PNG, atomically."""
    path = Path(path)
    with atomic_output(path) as temporary:
        save_froc(curve, temporary, title)
    return path


def save_froc(curve: FrocCurve, path: Path, title: str = "FROC") -> None:
    """Draw the FROC into the PNG file ``path``; matplotlib is imported here."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend is touched

    fps, sens = curve.fp_per_case, np.nan_to_num(curve.sensitivity)
    x_low, x_high = CPM_FP_RATES[0], max(CPM_FP_RATES[-1], float(fps.max()) * 1.1)
    x = np.concatenate([[x_low], np.clip(fps[fps > x_low], x_low, None), [x_high]])
    y = np.concatenate([[sens[fps <= x_low].max()], sens[fps > x_low], [sens[-1]]])
    figure = Figure(figsize=(6, 4.5), dpi=120)
    axes = figure.subplots()
    axes.step(x, y, where="post", lw=2, label=f"CPM {_fmt(cpm(curve))}")
    axes.plot(CPM_FP_RATES, np.nan_to_num(sensitivity_at(curve)), "o", ms=5)
    axes.set_xscale("log", base=2)
    axes.set_xticks(list(CPM_FP_RATES), [f"{r:g}" for r in CPM_FP_RATES])
    axes.set_xlim(x_low, x_high)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("mean false positives per case")
    axes.set_ylabel("lesion-wise sensitivity")
    axes.set_title(f"{title} ({curve.n_lesions} lesions, {curve.n_cases} cases)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, format="png")


def _report_csv(columns: Iterable[str], rows: Iterable[dict]) -> str:
    """The reports' CSV: numbers with 6 significant digits, infinity as ``inf``, missing values empty."""
    return csv_text(list(columns), rows, float_format=".6g", infinity="inf")


def _row(case: str, kind: str, identifier: int, centroid: Iterable[float], values: dict) -> dict:
    left, posterior, superior = centroid
    return {"case": case, "kind": kind, "id": identifier, "centroid_l": left, "centroid_p": posterior,
            "centroid_s_lps": superior, **values}


def _without_nan(value: object) -> object:
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_nan(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _fmt(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"

