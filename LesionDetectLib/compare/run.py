"""`compare(prior, current)`: what is new, enlarging, stable, shrinking or resolved since the prior scan."""

from __future__ import annotations

from pathlib import Path

from ..batch import DetectOptions
from ..errors import ComparisonError
from ..progress import ProgressCallback, silent
from ..result import DetectionResult
from ..volume import Volume
from .changes import ChangeRules, find_changes
from .comparison import Comparison
from .registration import QualityLimits, register
from .timepoints import (
    Timepoint,
    detect_scan,
    from_labels,
    is_results,
    options_like,
    read_results,
    settings_differences,
)

Source = DetectionResult | Volume | str | Path


def compare(
    prior: Source,
    current: Source,
    *,
    prior_scan: str | Path | Volume | None = None,
    current_scan: str | Path | Volume | None = None,
    prior_lesions: str | Path | Volume | None = None,
    current_lesions: str | Path | Volume | None = None,
    options: DetectOptions | None = None,
    registration: str = "rigid",
    rules: ChangeRules | None = None,
    limits: QualityLimits | None = None,
    allow_different_settings: bool = False,
    progress: ProgressCallback = silent,
) -> Comparison:
    """Compare the lesions of a prior and a current scan.

    Each of ``prior`` and ``current`` is a `DetectionResult`, a results folder (or its ``.lesions.json``) that
    LesionDetect wrote — its scan is ``*_scan`` or lies beside it —, or a scan (a `Volume` or an image path) whose
    lesions are detected first with the model and settings the other side's results used (else ``options``,
    else the default model), or read from a label image ``*_lesions``. Raises `ComparisonError` when the scans do not
    align or their lesions were found with different models or settings (unless ``allow_different_settings``).
    """
    options, rules, limits = options or DetectOptions(), rules or ChangeRules(), limits or QualityLimits()
    sides = {
        "prior": _known(prior, prior_scan, prior_lesions, options),
        "current": _known(current, current_scan, current_lesions, options),
    }
    spans = {"prior": (0.0, 0.4), "current": (0.4, 0.8)}
    for name, other in (("prior", "current"), ("current", "prior")):
        if not isinstance(sides[name], Timepoint):
            known = sides[other]
            like = options_like(known.result, options) if isinstance(known, Timepoint) and known.source != "labels" else options
            progress("detect", spans[name][0], f"detecting the lesions of the {name} scan")
            sides[name] = detect_scan(sides[name], like, _within(progress, *spans[name]))
    before, after = sides["prior"], sides["current"]
    warnings = _check_comparable(before, after, allow_different_settings)
    progress("register", 0.8, f"{registration} registration of the prior to the current scan")
    alignment = register(before.volume, after.volume, registration, limits)
    progress("match", 0.9, "matching lesions")
    changes = find_changes(before, after, alignment, rules)
    return Comparison(before, after, alignment, changes, rules, limits, warnings)


def _known(source: Source, scan, lesions, options: DetectOptions) -> Timepoint | Volume | Path:
    """The side's lesions when they are already known (results, labels), else the scan to detect them in."""
    results = isinstance(source, DetectionResult) or (not isinstance(source, Volume) and is_results(source))
    if results and lesions is not None:
        raise ComparisonError(f"{_name(source)} holds results already: a label image replaces the detection of a scan")
    if not results and scan is not None:
        raise ComparisonError(f"{_name(source)} is a scan: a separate scan is named only for a results folder")
    if isinstance(source, DetectionResult):
        return Timepoint(source, "detected", source.probability)
    if results:
        return read_results(source, scan)
    if lesions is not None:
        from ..io import read_volume

        volume = source if isinstance(source, Volume) else read_volume(source, series_uid=options.series_uid)
        return from_labels(volume, lesions)
    return source if isinstance(source, Volume) else Path(source)


def _name(source: Source) -> str:
    return source.volume.name if isinstance(source, DetectionResult) else getattr(source, "name", str(source))


def _check_comparable(prior: Timepoint, current: Timepoint, allow_different_settings: bool) -> list[str]:
    """Refuse scans of different modalities, and lesions found with different settings unless allowed.

    Returns the warnings to report: the detection's own (e.g. "does not look skull-stripped") and allowed differences.
    """
    modalities = (prior.volume.modality, current.volume.modality)
    if None not in modalities and modalities[0] != modalities[1]:
        raise ComparisonError(f"the prior scan is {modalities[0]} and the current scan {modalities[1]}: compare like with like")
    differences = settings_differences(prior.result, current.result)
    if differences and not allow_different_settings:
        raise ComparisonError(
            "the two scans' lesions were found with different settings (" + "; ".join(differences) + "): their changes "
            "would mix real change with the settings'; detect both alike, or pass --allow-different-settings"
        )
    scans = [f"{name} scan: {warning}" for name, side in (("prior", prior), ("current", current))
             for warning in side.result.warnings]
    return scans + [f"lesions found with different settings: {difference}" for difference in differences]


def _within(progress: ProgressCallback, start: float, end: float) -> ProgressCallback:
    """A progress callback mapping 0–1 onto ``start``–``end`` of ``progress``."""

    def report(stage: str, fraction: float, message: str) -> None:
        progress(stage, start + (end - start) * fraction, message)

    return report

