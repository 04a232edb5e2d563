"""The files of a comparison, staged and published together (a complete new set, or the old one left as it was).

In ``out_dir``:

- ``change.csv`` / ``change.json``: one row per group of matched lesions (`changes.CHANGE_COLUMNS`); the JSON adds
  the summary, the registration and its quality, the rules and both scans' settings;
- ``current.seg.nrrd``, ``.mrk.json``, ``.lesions.csv``, ``.lesions.json``: the current scan's lesions with
  ``change``, ``change_certainty`` and ``prior_lesions`` columns; new lesions are cyan, enlarging ones magenta;
- ``prior.*``: the same for the prior scan, on its own grid, with ``change`` and ``current_lesions``;
- ``prior_to_current.tfm``: the registration as an ITK transform (current LPS point → prior point), which 3D Slicer
  loads as the transform that shows the prior aligned under the current scan;
- ``change.png``: axial slices of the current scan through the changes.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..overview import write_outlines
from ..writers import (
    output_paths,
    write_points,
    write_segmentation,
    write_staged,
    write_table_csv,
    write_table_json,
)
from ..writers.atomic import check_writable, staged_outputs
from .changes import CHANGE_COLUMNS, ChangeRules, LesionChange, lesion_changes, resample_onto
from .registration import QualityLimits, Registration
from .timepoints import Timepoint

CHANGE_FORMAT, CHANGE_VERSION = "lesiondetect.change", 1
COLORS = {"new": (0.0, 0.85, 1.0), "enlarging": (1.0, 0.25, 0.85)}  # cyan and magenta: far from the red lesions
OUTLINES = (  # (classes, colour, line style) of the PNG, drawn in this order
    (("stable", "shrinking", "outside"), "red", "solid"),
    (("enlarging",), "magenta", "solid"),
    (("new",), "cyan", "solid"),
)


def comparison_paths(out_dir: Path) -> dict[str, Path]:
    paths = {
        "change_csv": out_dir / "change.csv",
        "change_json": out_dir / "change.json",
        "overview": out_dir / "change.png",
        "transform": out_dir / "prior_to_current.tfm",
    }
    for side in ("current", "prior"):
        for kind, path in output_paths(out_dir, side).items():
            if kind in ("segmentation", "points", "table_csv", "table_json"):
                paths[f"{side}_{kind}"] = path
    return paths


def write_comparison(
    out_dir: Path, prior: Timepoint, current: Timepoint, registration: Registration, changes: Sequence[LesionChange],
    *, rules: ChangeRules, limits: QualityLimits, summary: dict[str, object], warnings: Sequence[str],
) -> dict[str, Path]:
    """Write the files of a comparison (`comparison.Comparison`'s fields and summary) into ``out_dir``; returns them by kind."""
    import SimpleITK as sitk

    check_writable(out_dir)
    paths = comparison_paths(out_dir)
    prior_changes, current_changes = lesion_changes(changes)
    rows = [change.as_row() for change in changes]
    document = {
        "format": CHANGE_FORMAT,
        "version": CHANGE_VERSION,
        "prior": _scan_document(prior),
        "current": _scan_document(current),
        "registration": registration.to_dict() | {"limits": limits.to_dict()},
        "rules": rules.to_dict(),
        "summary": summary,
        "warnings": list(warnings),
        "changes": rows,
    }
    with staged_outputs(out_dir) as staging:
        write_staged(staging, paths["change_csv"], lambda path: _write_text(path, _csv_text(rows)))
        write_staged(staging, paths["change_json"], lambda path: _write_text(path, _json_text(document)))
        write_staged(staging, paths["transform"], lambda path: sitk.WriteTransform(registration.to_sitk(), str(path)))
        for side, timepoint, by_lesion, other in (("current", current, current_changes, "prior"),
                                                  ("prior", prior, prior_changes, "current")):
            _write_results(staging, paths, side, timepoint, by_lesion, other)
        write_staged(staging, paths["overview"], lambda path: _write_png(path, prior, current, registration, changes))
    return paths


def _write_results(staging, paths, side: str, timepoint: Timepoint, changes: dict[int, LesionChange], other: str):
    result = timepoint.result
    extra = {
        lesion_id: {
            "change": change.change,
            "change_certainty": change.certainty,
            f"{other}_lesions": ";".join(f"L{i}" for i in (change.prior_ids if other == "prior" else change.current_ids)),
        }
        for lesion_id, change in changes.items()
    }
    colors = {lesion_id: COLORS[change.change] for lesion_id, change in changes.items() if change.change in COLORS}
    volume, lesions = result.volume, result.lesions
    write_staged(staging, paths[f"{side}_segmentation"],
                 lambda path: write_segmentation(path, volume, result.label_map, lesions, colors))
    write_staged(staging, paths[f"{side}_points"], lambda path: write_points(path, lesions, volume.name))
    write_staged(staging, paths[f"{side}_table_csv"], lambda path: write_table_csv(path, lesions, extra))
    write_staged(staging, paths[f"{side}_table_json"], lambda path: write_table_json(
        path, volume, lesions, model_name=result.model_name, threshold=result.threshold, settings=result.settings,
        warnings=result.warnings, extra=extra))


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="")


def _csv_text(rows: list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CHANGE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: "" if value is None else value for key, value in row.items()} for row in rows)
    return buffer.getvalue()


def _scan_document(timepoint: Timepoint) -> dict[str, object]:
    volume, result = timepoint.volume, timepoint.result
    return {
        "name": volume.name,
        "modality": volume.modality,
        "lesions_from": timepoint.source,
        "probability_known": timepoint.probability is not None,
        "model": result.model_name,
        "threshold": float(result.threshold),
        "settings": result.settings,
        "shape_ijk": list(volume.shape_ijk),
        "spacing": [float(value) for value in volume.spacing],
        "origin_lps": [float(value) for value in volume.origin],
        "direction_lps": np.asarray(volume.direction, dtype=float).tolist(),
    }


def _json_text(document: dict[str, object]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _write_png(path: Path, prior: Timepoint, current: Timepoint, registration: Registration,
               changes: Sequence[LesionChange]) -> None:
    """Axial slices of the current scan: new lesions cyan, enlarging magenta, others red, resolved ones yellow dashed."""
    _, by_current = lesion_changes(changes)
    labels = np.asarray(current.result.label_map)
    outlines = []
    for classes, colour, style in OUTLINES:
        ids = [lesion_id for lesion_id, change in by_current.items() if change.change in classes]
        outlines.append((np.isin(labels, ids), colour, style))
    resolved = [i for change in changes if change.change == "resolved" for i in change.prior_ids]
    prior_on_current = resample_onto(np.asarray(prior.result.label_map), prior.volume, current.volume,
                                     registration.to_sitk())
    outlines.append((np.isin(prior_on_current, resolved), "yellow", "dashed"))
    order = {"new": 0, "enlarging": 1, "resolved": 2, "shrinking": 3, "stable": 4, "outside": 5}
    ranked = sorted(changes, key=lambda change: (order[change.change], -change.current_volume_mm3))
    firsts = list({change.change: change for change in reversed(ranked)}.values())[::-1]  # the first of each class
    ranked = sorted(firsts, key=lambda change: order[change.change]) + [c for c in ranked if c not in firsts]
    counts = Counter(change.change for change in changes)
    title = (
        f"{current.volume.name} since {prior.volume.name}: " + ", ".join(f"{counts[name]} {name}" for name in order) +
        "\ncyan: new, magenta: enlarging, red: other lesions, yellow dashed: resolved; patient's right on the left"
    )
    write_outlines(path, current.volume, outlines, [change.centroid_lps for change in ranked], title)
