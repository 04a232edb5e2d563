"""The lesion table: ``.lesions.csv`` (columns `TABLE_COLUMNS`) and ``.lesions.json`` (the same rows plus context).

Both are byte-deterministic: floats are written as ``repr`` of the values `Lesion.as_row` rounded, JSON keys are
sorted. Missing values (and non-finite ones) are an empty CSV cell and ``null`` in JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..csv_cells import csv_text
from ..lesions import TABLE_COLUMNS, Lesion
from ..volume import Volume
from .atomic import atomic_output

TABLE_FORMAT = "lesiondetect.lesions"
TABLE_VERSION = 1


def _plain(value: Any) -> Any:
    """Plain JSON-able Python values (numpy scalars and arrays, tuples, paths); non-finite floats → None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(item) for item in value), key=str)
    return str(value)


Extra = Mapping[int, Mapping[str, Any]]  # lesion id → more columns for its row (e.g. the follow-up change)


def _extra_columns(extra: Extra | None) -> list[str]:
    columns: dict[str, None] = {}
    for values in (extra or {}).values():
        columns.update(dict.fromkeys(values))
    return list(columns)


def lesion_rows(lesions: Iterable[Lesion], extra: Extra | None = None) -> list[dict[str, Any]]:
    """`Lesion.as_row` for each lesion (by id), as plain Python values in `TABLE_COLUMNS` order.

    ``extra`` columns follow, in the order first named (a lesion without them gets None).
    """
    columns = _extra_columns(extra)
    return [
        {column: _plain(row[column]) for column in TABLE_COLUMNS}
        | {column: _plain((extra or {}).get(row["id"], {}).get(column)) for column in columns}
        for row in (lesion.as_row() for lesion in sorted(lesions, key=lambda lesion: lesion.id))
    ]


def rows_csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV text of ``rows`` (dicts) in ``columns``, cells formatted as in the lesion table."""
    return csv_text(columns, ({column: _plain(row[column]) for column in columns} for row in rows))


def table_csv_text(lesions: Iterable[Lesion], extra: Extra | None = None) -> str:
    columns = [*TABLE_COLUMNS, *_extra_columns(extra)]
    return rows_csv_text(lesion_rows(lesions, extra), columns)


def write_table_csv(path: str | Path, lesions: Iterable[Lesion], extra: Extra | None = None) -> Path:
    """One row per lesion, header `TABLE_COLUMNS` (then the ``extra`` columns)."""
    path = Path(path)
    text = table_csv_text(lesions, extra)
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8", newline="")
    return path


def table_document(
    volume: Volume, lesions: Iterable[Lesion], *, model_name: str, threshold: float, settings: dict[str, Any],
    warnings: Iterable[str], extra: Extra | None = None,
) -> dict[str, Any]:
    """The ``.lesions.json`` document: the lesion rows in the context of the input and the model that found them."""
    return _plain({
        "format": TABLE_FORMAT,
        "version": TABLE_VERSION,
        "input": {
            "name": volume.name,
            "shape_ijk": list(volume.shape_ijk),
            "spacing": [float(value) for value in volume.spacing],
            "origin_lps": [float(value) for value in volume.origin],
            "direction_lps": np.asarray(volume.direction, dtype=float).tolist(),  # rows; columns = i, j, k axes
        },
        "model": model_name,
        "threshold": float(threshold),
        "settings": settings,
        "warnings": list(warnings),
        "lesions": lesion_rows(lesions, extra),
    })


def write_table_json(
    path: str | Path, volume: Volume, lesions: Iterable[Lesion], *, model_name: str, threshold: float,
    settings: dict[str, Any], warnings: Iterable[str], extra: Extra | None = None,
) -> Path:
    """The lesion rows with the input geometry, model, threshold, settings and warnings (sorted keys)."""
    path = Path(path)
    document = table_document(volume, lesions, model_name=model_name, threshold=threshold, settings=settings,
                              warnings=warnings, extra=extra)
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path
