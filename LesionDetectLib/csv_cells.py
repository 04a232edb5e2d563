"""CSV cells and text as every table of the library writes them: empty for missing values, ``\\n`` line ends.

The lesion table writes floats as ``repr`` (they round-trip exactly: `Lesion.as_row` rounded them already); the
evaluation reports write them with 6 significant digits (``float_format=".6g"``) and infinity as ``inf``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def csv_cell(value: Any, float_format: str | None = None, infinity: str = "") -> str:
    """``value`` as a CSV cell: None and NaN empty, ±infinity ``infinity``, other floats ``repr`` or in
    ``float_format``, anything else ``str``; numpy scalars as the Python values they hold."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return infinity
        return repr(value) if float_format is None else format(value, float_format)
    return str(value)


def csv_text(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any]], float_format: str | None = None, infinity: str = ""
) -> str:
    """A header of ``columns``, then one line per row (a column missing from a row is empty), cells `csv_cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(column), float_format, infinity) for column in columns])
    return buffer.getvalue()
