"""The predictions of an evaluation: finding each case's files in the prediction folder, and reading them.

``<case>.lesions.csv`` (preferred) or ``<case>.mrk.json`` and, for Dice, ``<case>.seg.nrrd``; also found under
``<case>/`` sub-folders, as ``<case>_0000`` or by the case's image stem. A box detector's ``<case>.boxes.mrk.json``
is not a prediction file (its lesions are in the table).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..volume import LPS_TO_RAS
from ..writers.markups import BOXES_SUFFIX
from .cases import CaseSource
from .matching import Prediction

PREDICTION_SUFFIXES = {".lesions.csv": "csv", ".mrk.json": "mrk", ".seg.nrrd": "seg"}
_CONFIDENCE = re.compile(r"confidence[\s:=]*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)", re.IGNORECASE)


def prediction_index(pred_dir: Path) -> dict[str, dict[str, Path]]:
    """Prediction files by stem and kind (csv, mrk, seg): in the folder, and in one-case sub-folders."""
    index = _index_files(pred_dir)
    for sub in sorted(p for p in pred_dir.iterdir() if p.is_dir()):
        inner = _index_files(sub)
        if len(inner) == 1 and sub.name not in index:
            index[sub.name] = next(iter(inner.values()))
    return index


def _index_files(folder: Path) -> dict[str, dict[str, Path]]:
    index: dict[str, dict[str, Path]] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.endswith(BOXES_SUFFIX)):
        for suffix, kind in PREDICTION_SUFFIXES.items():
            if path.name.endswith(suffix):
                index.setdefault(path.name[: -len(suffix)], {})[kind] = path
    return index


def locate_predictions(
    sources: Sequence[CaseSource], index: dict[str, dict[str, Path]], pred_dir: Path, allow_missing: bool
) -> tuple[list[dict[str, Path]], list[str], list[str]]:
    """(each case's prediction files by kind, warnings, problems).

    A case without a lesion table or markups is a problem, or with ``allow_missing`` counted as no detections.
    """
    located, missing = [], []
    for source in sources:
        names = [source.case, f"{source.case}_0000"] + ([source.image_stem] if source.image_stem else [])
        files = next((index[name] for name in names if name in index), {})
        if "csv" not in files and "mrk" not in files:
            missing.append(source.case)
        located.append(files)
    warnings, problems = [], []
    if missing and allow_missing:
        warnings.append(f"no predictions for {len(missing)} case(s), counted as no detections: "
                        f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
    elif missing:
        problems.append(f"no <case>.lesions.csv or <case>.mrk.json in {pred_dir} for case(s) "
                        f"{', '.join(missing)} (use --allow-missing to count them as no detections)")
    return located, warnings, problems


def unused_predictions(
    index: dict[str, dict[str, Path]], located: Sequence[dict[str, Path]], left_out: set[str], pred_dir: Path
) -> list[str]:
    """A warning naming prediction files that belong to no evaluated case (cases left out on purpose aside)."""
    used = {path for files in located for path in files.values()}
    unused = sorted(
        stem for stem, files in index.items() if not set(files.values()) & used and stem not in left_out
    )
    if not unused:
        return []
    return [f"{len(unused)} prediction(s) in {pred_dir} match no evaluated case and were not used (name "
            f"lesion-free cases with --lesion-free): {', '.join(unused[:5])}{' …' if len(unused) > 5 else ''}"]


def read_predictions(path: str | Path) -> list[Prediction]:
    """Predicted lesions from a ``.lesions.csv`` (LPS centroid, ``confidence_max``) or a ``.mrk.json``."""
    path = Path(path)
    try:
        if path.name.endswith(".json"):
            return _markup_predictions(path, json.loads(path.read_text(encoding="utf-8")))
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _table_predictions(path, list(csv.DictReader(handle)))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read predictions {path}: {exc}") from exc


def _table_predictions(path: Path, rows: list[dict[str, str]]) -> list[Prediction]:
    predictions = []
    for number, row in enumerate(rows, start=2):
        if not any((value or "").strip() for value in row.values()):
            continue
        try:
            if row.get("centroid_l") not in (None, ""):
                centre = (float(row["centroid_l"]), float(row["centroid_p"]), float(row["centroid_s_lps"]))
            else:
                centre = (-float(row["centroid_r"]), -float(row["centroid_a"]), float(row["centroid_s"]))
            confidence = float(row["confidence_max"])
            identifier = int(row["id"]) if row.get("id") not in (None, "") else None
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{path} line {number}: needs numeric centroid_l, centroid_p, centroid_s_lps (or centroid_r, "
                f"centroid_a, centroid_s) and confidence_max ({exc})"
            ) from exc
        if not all(math.isfinite(v) for v in (*centre, confidence)):
            raise DatasetError(f"{path} line {number}: centroid and confidence must be finite")
        predictions.append(Prediction(centre, confidence, identifier))
    return predictions


def _markup_predictions(path: Path, document: dict) -> list[Prediction]:
    """Control points of a Slicer markups file; confidence from ``confidence 0.87`` in the description, else 1."""
    predictions = []
    for markup in document.get("markups", []):
        flip = np.diag(LPS_TO_RAS) if str(markup.get("coordinateSystem", "LPS")).upper() == "RAS" else np.ones(3)
        for number, point in enumerate(markup.get("controlPoints", []), start=1):
            position = point.get("position")
            if position is None or len(position) != 3 or not np.all(np.isfinite(np.asarray(position, float))):
                raise DatasetError(f"{path}: control point {number} has no finite 3-D position")
            found = _CONFIDENCE.search(str(point.get("description", "")))
            label = re.fullmatch(r"L(\d+)", str(point.get("label", "")))
            predictions.append(Prediction(
                tuple(float(v) for v in np.asarray(position, dtype=float) * flip),
                float(found.group(1)) if found else 1.0,
                int(label.group(1)) if label else None,
            ))
    return predictions
