"""A lesion added by the reader (`LesionDetectLogic.addLesionAt`): the one-lesion files ``lesiondetect add-lesion``
wrote → a new segment, control point and table row in the volume's existing results, accepted, origin "reader".
Nothing changes unless the files load fully; no file at all means nothing lesion-like was found."""

from __future__ import annotations

import math
import os

import slicer
import vtk

from LesionDetectLib.review import ACCEPTED, READER, REVIEW_COLUMNS, review_columns

from . import results
from .errors import ResultsError
from .results import DetectionNodes
from .review import showReview


def addFromFiles(outputFolder: str, stem: str, nodes: DetectionNodes) -> str | None:
    """Add the lesion in ``outputFolder`` to ``nodes``; its label (``L<n>``, n one above the highest id), or None
    when the run wrote no lesion. `ResultsError` (nothing changed) for incomplete files or removed nodes."""
    paths = results.outputPaths(outputFolder, stem)
    if not any(os.path.isfile(path) for path in paths.values()):
        return None
    if any(node.GetScene() is None for node in nodes):
        raise ResultsError("the lesion results were removed from the scene during the run")
    created = []
    try:
        columns, rows = results.readLesionTable(paths["table"])
        if len(rows) != 1:
            raise ValueError(f"{os.path.basename(paths['table'])} holds {len(rows)} lesions, expected one")
        results.checkLabelMapReadable(paths["segmentation"])
        source = results.loadOne(paths["segmentation"], "SegmentationFile", created).GetSegmentation()
        pointList = results.loadOne(paths["points"], "MarkupsFile", created)
        if source.GetNumberOfSegments() != 1 or pointList.GetNumberOfControlPoints() != 1:
            raise ValueError("the added lesion's segmentation or point list does not hold exactly one lesion")
        segment = slicer.vtkSegment()
        segment.DeepCopy(source.GetNthSegment(0))
        position = pointList.GetNthControlPointPosition(0)
    except Exception as error:
        raise ResultsError(f"the added lesion could not be loaded, nothing was added: {error}") from error
    finally:
        for node in created:
            slicer.mrmlScene.RemoveNode(node)
    lesionId = 1 + max((int(row["id"]) for row in results.lesionRows(nodes.table)), default=0)
    row = {**rows[0], "id": str(lesionId), "name": f"Lesion {lesionId}", "label": f"L{lesionId}",
           "status": ACCEPTED, "comment": "", "origin": READER}
    segment.SetName(row["name"])
    nodes.segmentation.GetSegmentation().AddSegment(segment, f"Lesion_{lesionId}")
    index = nodes.points.AddControlPoint(vtk.vtkVector3d(*position), row["label"])
    nodes.points.SetNthControlPointLocked(index, True)
    if nodes.table.GetNumberOfRows() == 0:  # a lesion-free run's columns have no type yet: type them from this row
        nodes.table.RemoveAllColumns()
        results.addTypedColumns(nodes.table, review_columns(columns), [row], REVIEW_COLUMNS)
    else:
        _appendRow(nodes.table, row)
    showReview(nodes)
    return row["label"]


def _appendRow(tableNode, row: dict) -> None:
    """Append ``row`` (CSV text by column name; a column it lacks stays empty) to the typed columns."""
    table = tableNode.GetTable()
    index = tableNode.AddEmptyRow()
    for columnIndex in range(table.GetNumberOfColumns()):
        column = table.GetColumn(columnIndex)
        text = str(row.get(column.GetName(), "") or "")
        if column.IsA("vtkStringArray"):
            column.SetValue(index, text)
        elif column.IsA("vtkDoubleArray") or column.IsA("vtkFloatArray"):
            column.SetValue(index, float(text) if text else math.nan)
        else:
            column.SetValue(index, int(float(text)) if text else 0)
    table.Modified()
