"""`DetectedBox`: one box of a box detector (its score, centre, edge lengths and axes in LPS mm)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from .volume import lps_to_ras

Triple = tuple[float, float, float]

BOX_COLUMNS = ("box_center_r", "box_center_a", "box_center_s", "box_size_x_mm", "box_size_y_mm", "box_size_z_mm")


@dataclass(frozen=True)
class DetectedBox:
    """One detected box in LPS mm: its centre, its edge lengths along its own axes ``x, y, z`` and those axes as
    unit vectors (``axes_lps[n]`` is axis n; for a detector on a RAS-aligned grid: right, anterior, superior)."""

    score: float
    centre_lps: Triple
    size_mm: Triple
    axes_lps: tuple[Triple, Triple, Triple]

    def contains(self, points_lps: np.ndarray) -> np.ndarray:
        """Which of ``points_lps`` (N, 3) lie inside the box (its faces included)."""
        offsets = (np.asarray(points_lps, float) - np.asarray(self.centre_lps)) @ np.asarray(self.axes_lps).T
        return np.all(np.abs(offsets) <= np.asarray(self.size_mm) / 2 + 1e-6, axis=1)

    def corners_lps(self) -> np.ndarray:
        """The eight corners (8, 3)."""
        half = np.asarray(self.size_mm) / 2
        signs = np.array(list(product((-1.0, 1.0), repeat=3)))
        return np.asarray(self.centre_lps) + (signs * half) @ np.asarray(self.axes_lps)

    def table_columns(self) -> dict[str, float]:
        """The table's box columns: the centre in RAS and the edge lengths (mm)."""
        centre = lps_to_ras(self.centre_lps)
        return dict(zip(BOX_COLUMNS, [round(float(v), 4) for v in (*centre, *self.size_mm)]))
