"""A reader's review of the detected lesions: each lesion's status, comment and origin, the reader-facing summary,
and the reviewed set's table files.

A lesion is ``unreviewed``, ``accepted`` or ``rejected``; its origin is ``model`` (found by the detection) or
``reader`` (added by the reader). The reviewed table is the detection's table plus the columns `REVIEW_COLUMNS`,
so a reviewed set is also a valid detection output: ``<stem>.lesions.csv`` (every column), ``<stem>.lesions.json``
(format ``lesiondetect.review``: the rows and the summary) and ``<stem>.review.txt`` (the summary, for the reader).
Nothing else goes into these files: no patient or study identifier, no path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .writers.table import _plain, rows_csv_text

UNREVIEWED, ACCEPTED, REJECTED = "unreviewed", "accepted", "rejected"
STATUSES = (UNREVIEWED, ACCEPTED, REJECTED)
MODEL, READER = "model", "reader"
ORIGINS = (MODEL, READER)
REVIEW_COLUMNS = ("status", "comment", "origin")
REVIEW_DEFAULTS = {"status": UNREVIEWED, "comment": "", "origin": MODEL}
REVIEW_FORMAT = "lesiondetect.review"
REVIEW_VERSION = 1

SLICER_SEGMENT_STATUS = {UNREVIEWED: "inprogress", ACCEPTED: "completed", REJECTED: "flagged"}
"""Slicer's own segment status (``Segmentation.Status`` tag) for each review status."""


def check_status(status: str) -> str:
    """``status`` if it is one of `STATUSES`, else ValueError naming them."""
    if status not in STATUSES:
        raise ValueError(f"lesion status must be one of {', '.join(STATUSES)}, not {status!r}")
    return status


def check_origin(origin: str) -> str:
    if origin not in ORIGINS:
        raise ValueError(f"lesion origin must be one of {', '.join(ORIGINS)}, not {origin!r}")
    return origin


def _volume(row: Mapping[str, Any]) -> float:
    value = _plain(row.get("volume_mm3"))
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0


def review_summary(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts and total volume (mm³) by status, over every row; a row without a status counts as unreviewed."""
    counts = dict.fromkeys(STATUSES, 0)
    volumes = dict.fromkeys(STATUSES, 0.0)
    added = 0
    for row in rows:
        status = check_status(row.get("status") or UNREVIEWED)
        counts[status] += 1
        volumes[status] += _volume(row)
        added += row.get("origin") == READER
    return {
        "lesions": sum(counts.values()),
        "count_by_status": counts,
        "volume_mm3_by_status": {status: round(volume, 4) for status, volume in volumes.items()},
        "added_by_reader": added,
    }


def summary_text(summary: Mapping[str, Any]) -> str:
    """The summary in two lines for the reader, e.g. ``3 lesions: 2 accepted, 1 rejected, 0 unreviewed …``."""
    counts, volumes = summary["count_by_status"], summary["volume_mm3_by_status"]
    added = summary["added_by_reader"]
    first = (f"{summary['lesions']} lesion(s): {counts[ACCEPTED]} accepted, {counts[REJECTED]} rejected, "
             f"{counts[UNREVIEWED]} unreviewed ({added} added by the reader).")
    kept = volumes[ACCEPTED] + volumes[UNREVIEWED]
    second = (f"Total lesion volume: accepted {volumes[ACCEPTED] / 1000:.2f} ml, accepted and unreviewed "
              f"{kept / 1000:.2f} ml, rejected {volumes[REJECTED] / 1000:.2f} ml.")
    return f"{first}\n{second}\n"


def review_columns(columns: Sequence[str]) -> list[str]:
    """``columns`` followed by whichever of `REVIEW_COLUMNS` they lack."""
    return [*columns, *(name for name in REVIEW_COLUMNS if name not in columns)]


def reviewed_rows(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows as plain values in ``columns`` order (plus the review columns), review fields defaulted and checked."""
    result = []
    for row in rows:
        plain = {name: _plain(row.get(name)) for name in review_columns(columns)}
        for name, default in REVIEW_DEFAULTS.items():
            plain[name] = plain[name] if plain[name] not in (None, "") else default
        check_status(plain["status"])
        check_origin(plain["origin"])
        result.append(plain)
    return result


def review_csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """The reviewed table as CSV: ``columns`` plus the review columns; empty cell for a missing value."""
    columns = review_columns(columns)
    return rows_csv_text(reviewed_rows(rows, columns), columns)


def review_document(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, Any]:
    """The ``.lesions.json`` of a reviewed set: format, version, summary and the rows."""
    plain = reviewed_rows(rows, columns)
    return {"format": REVIEW_FORMAT, "version": REVIEW_VERSION, "summary": review_summary(plain), "lesions": plain}


def review_json_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    return json.dumps(review_document(rows, columns), indent=2, sort_keys=True, ensure_ascii=False,
                      allow_nan=False) + "\n"
