"""The panel's results table: one row per lesion (label, confidence, volume, diameter, review status and, for a
comparison's results, the change since the prior scan); a row names its point."""

from __future__ import annotations

import math

import qt

from . import results
from .results import DetectionNodes


def _number(value, digits: int) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


class ResultsView:
    """Shows a run's `DetectionNodes` in ``tableWidget`` (a QTableWidget with six columns)."""

    def __init__(self, tableWidget) -> None:
        self.tableWidget = tableWidget
        self.nodes: DetectionNodes | None = None

    def show(self, nodes: DetectionNodes | None) -> int:
        """Fill the table from ``nodes.table`` (empty for None); returns the number of lesions."""
        self.nodes = nodes
        rows = results.lesionRows(nodes.table) if nodes else []
        self.tableWidget.setRowCount(len(rows))
        for rowIndex, row in enumerate(rows):
            cells = (row["label"], _number(row["confidence_max"], 2), _number(row["volume_mm3"], 1),
                     _number(row["longest_axial_diameter_mm"], 1), row["status"], row.get("change", ""))
            for columnIndex, text in enumerate(cells):
                self.tableWidget.setItem(rowIndex, columnIndex, qt.QTableWidgetItem(text))
        return len(rows)

    def labelAt(self, row: int) -> str:
        """The point label (``L1``…) of a table row."""
        return self.tableWidget.item(row, 0).text()

    def selectLabel(self, label: str | None) -> None:
        """Highlight the row of lesion ``label`` (none for None)."""
        labels = [self.labelAt(row) for row in range(self.tableWidget.rowCount())]
        if label in labels:
            self.tableWidget.selectRow(labels.index(label))
        else:
            self.tableWidget.clearSelection()
