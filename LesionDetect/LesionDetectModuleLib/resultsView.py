"""The panel's results table: one row per lesion (label, confidence, volume, diameter); a row names its point."""

from __future__ import annotations

import qt

from . import results
from .results import DetectionNodes


class ResultsView:
    """Shows a run's `DetectionNodes` in ``tableWidget`` (a QTableWidget with four columns)."""

    def __init__(self, tableWidget) -> None:
        self.tableWidget = tableWidget
        self.nodes: DetectionNodes | None = None

    def show(self, nodes: DetectionNodes | None) -> int:
        """Fill the table from ``nodes.table`` (empty for None); returns the number of lesions."""
        self.nodes = nodes
        rows = results.lesionRows(nodes.table) if nodes else []
        self.tableWidget.setRowCount(len(rows))
        for rowIndex, row in enumerate(rows):
            cells = (row["label"], f"{row['confidence_max']:.2f}", f"{row['volume_mm3']:.1f}",
                     f"{row['longest_axial_diameter_mm']:.1f}")
            for columnIndex, text in enumerate(cells):
                self.tableWidget.setItem(rowIndex, columnIndex, qt.QTableWidgetItem(text))
        return len(rows)

    def labelAt(self, row: int) -> str:
        """The point label (``L1``…) of a table row."""
        return self.tableWidget.item(row, 0).text()
