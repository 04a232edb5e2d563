"""The files written by ``lesiondetect detect`` → the nodes users see, placed next to the input volume.

Geometry is never converted here: Slicer's own readers load ``<stem>.seg.nrrd`` and ``<stem>.mrk.json`` (both carry
their coordinate system), and only the measurement table is built from ``<stem>.lesions.csv``. A box detector's
``<stem>.boxes.mrk.json`` becomes one markups ROI node per lesion (`boxNodes`), beside the three.

Nothing in the scene changes unless every file loads fully and the three agree: as many segments and control points
as table rows, in the same order, every control point position defined. Slicer's readers alone do not promise that:
the markups reader accepts a control point without a readable position (it warns and marks it undefined), and the
segmentation reader aborts the whole process on a truncated NRRD, so the label map is read once with SimpleITK first.

Parent transforms: the input volume is written without its parent transform (its own IJK→RAS only), so the files
are in the volume's local coordinates; every output node is put under the same parent transform as the volume.
The outputs therefore overlay the input exactly, also under a non-linear or later-edited transform, without
resampling the input. Table coordinates (``centroid_r/a/s``) are in that local frame; world positions are the
control points' (``GetNthControlPointPositionWorld``), which is what slice jumping uses.
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import NamedTuple

import slicer
import vtk

from LesionDetectLib.review import REVIEW_COLUMNS, review_columns, reviewed_rows
from LesionDetectLib.writers.markups import BOXES_SUFFIX

from .errors import ResultsError

INPUT_VOLUME_ATTRIBUTE = "LesionDetect.InputVolumeID"
ROLE_ATTRIBUTE = "LesionDetect.Role"
ROLE_CLASSES = {
    "segmentation": "vtkMRMLSegmentationNode",
    "points": "vtkMRMLMarkupsFiducialNode",
    "table": "vtkMRMLTableNode",
}
NAME_SUFFIXES = {"segmentation": "lesions", "points": "lesion points", "table": "lesion table"}
BOX_ROLE, BOX_CLASS = "box", "vtkMRMLMarkupsROINode"
REQUIRED_COLUMNS = ("id", "name", "label", "confidence_max", "volume_mm3", "longest_axial_diameter_mm")


class DetectionNodes(NamedTuple):
    """The result nodes of one run; unpacks as ``seg, points, table``."""

    segmentation: object
    points: object
    table: object


def outputPaths(outputFolder: str, stem: str) -> dict[str, str]:
    return {
        "segmentation": os.path.join(outputFolder, f"{stem}.seg.nrrd"),
        "points": os.path.join(outputFolder, f"{stem}.mrk.json"),
        "table": os.path.join(outputFolder, f"{stem}.lesions.csv"),
    }


def boxesPath(outputFolder: str, stem: str) -> str:
    """A box detector's ROIs (absent for a segmentation model)."""
    return os.path.join(outputFolder, f"{stem}{BOXES_SUFFIX}")


def loadResults(outputFolder: str, stem: str, volumeNode, showIn3D: bool = False) -> DetectionNodes:
    """Load one run's files as nodes named after ``volumeNode``, replacing that volume's previous results; raise
    `ResultsError` (and change nothing) unless every file loads fully and validly."""
    paths = outputPaths(outputFolder, stem)
    missing = [os.path.basename(path) for path in paths.values() if not os.path.isfile(path)]
    if missing:
        raise ResultsError(f"the detection finished without writing {', '.join(missing)}")
    created = []
    try:
        columns, rows = readLesionTable(paths["table"])
        rows, columns = reviewed_rows(rows, columns), review_columns(columns)  # unreviewed unless the file says
        checkLabelMapReadable(paths["segmentation"])
        segmentation = loadOne(paths["segmentation"], "SegmentationFile", created)
        points = loadOne(paths["points"], "MarkupsFile", created)
        boxes = loadBoxes(boxesPath(outputFolder, stem), rows, created)
        created.append(tableNodeFromRows(columns, rows, textColumns=REVIEW_COLUMNS))
        nodes = DetectionNodes(segmentation, points, created[-1])
        checkAgreement(nodes, rows)
    except Exception as error:
        for node in created:
            slicer.mrmlScene.RemoveNode(node)
        raise ResultsError(f"the detection's results could not be loaded, the scene is unchanged: {error}") from error
    removeResults(volumeNode)
    _adopt(nodes, volumeNode)
    _adoptBoxes(boxes, rows, volumeNode)
    nodes.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    setShowIn3D(nodes.segmentation, showIn3D)
    from .review import showReview  # here: `review` builds on this module

    showReview(nodes)
    return nodes


def loadOne(path: str, fileType: str, created: list):
    """Read ``path`` with Slicer's reader for ``fileType``; every node it made goes into ``created``."""
    loaded = loadAll(path, fileType, created)
    if len(loaded) != 1:
        raise ValueError(f"{os.path.basename(path)} holds {len(loaded)} nodes, expected one")
    return loaded[0]


def loadAll(path: str, fileType: str, created: list) -> list:
    """Every node Slicer's reader for ``fileType`` makes of ``path`` (all of them also go into ``created``)."""
    loaded = list(slicer.util.loadNodesFromFile(path, fileType))
    created.extend(loaded)
    return loaded


def loadBoxes(path: str, rows: list[dict[str, str]], created: list) -> list:
    """The ROI nodes of a box detector's ``.boxes.mrk.json`` (none without the file): one per table row.

    Each ROI is read on its own by Slicer's ROI storage node (``AddNewMarkupsNodeFromFile`` with its index): the
    markups reader loads every markup of a file but returns only the first."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as file:
        count = len(json.load(file).get("markups", []))
    if count != len(rows):
        raise ValueError(f"{os.path.basename(path)} holds {count} box(es), the table {len(rows)} lesion(s)")
    boxes = []
    for index in range(count):
        storageNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROIJsonStorageNode")
        created.append(storageNode)
        node = storageNode.AddNewMarkupsNodeFromFile(path, "", index)
        if node is None or not node.IsA(BOX_CLASS):
            raise ValueError(f"box {index + 1} of {os.path.basename(path)} is not a readable ROI")
        created.append(node)
        boxes.append(node)
    return boxes


def readLesionTable(csvPath: str) -> tuple[list[str], list[dict[str, str]]]:
    """The column names and rows of a ``.lesions.csv``; ValueError if a column is missing or a row is incomplete."""
    with open(csvPath, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    absent = [name for name in REQUIRED_COLUMNS if name not in columns]
    if absent:
        raise ValueError(f"{os.path.basename(csvPath)} lacks the column(s) {', '.join(absent)}")
    for number, row in enumerate(rows, start=2):
        if None in row or None in row.values() or not row["label"]:
            raise ValueError(f"{os.path.basename(csvPath)} line {number} is incomplete")
    return columns, rows


def checkLabelMapReadable(path: str) -> None:
    """Read the whole label map once with SimpleITK: a truncated or damaged file raises here, in Python."""
    import SimpleITK as sitk

    try:
        sitk.ReadImage(path)
    except RuntimeError as error:
        raise ValueError(f"{os.path.basename(path)} is damaged or truncated ({str(error).splitlines()[-1]})") from None


def checkAgreement(nodes: DetectionNodes, rows: list[dict[str, str]]) -> None:
    """As many segments and defined control points as rows, with the rows' names and labels in the rows' order."""
    segmentation = nodes.segmentation.GetSegmentation()
    names = [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())]
    if names != [row["name"] for row in rows]:
        raise ValueError(f"the segmentation has segments {names}, the table lists {[row['name'] for row in rows]}")
    points = nodes.points
    labels = [points.GetNthControlPointLabel(n) for n in range(points.GetNumberOfControlPoints())]
    if labels != [row["label"] for row in rows]:
        raise ValueError(f"the point list has points {labels}, the table lists {[row['label'] for row in rows]}")
    undefined = [labels[n] for n in range(len(labels))
                 if points.GetNthControlPointPositionStatus(n) != points.PositionDefined]
    if undefined:
        raise ValueError(f"the position of point(s) {', '.join(undefined)} is missing or unreadable")


def findResults(volumeNode) -> DetectionNodes | None:
    """The result nodes made earlier for ``volumeNode`` (None unless all three are in the scene)."""
    if volumeNode is None:
        return None
    found = {}
    for role, className in ROLE_CLASSES.items():
        for node in slicer.util.getNodesByClass(className):
            if node.GetAttribute(INPUT_VOLUME_ATTRIBUTE) == volumeNode.GetID() and node.GetAttribute(ROLE_ATTRIBUTE) == role:
                found[role] = node
                break
    return DetectionNodes(**found) if len(found) == len(ROLE_CLASSES) else None


def removeResults(volumeNode) -> None:
    """Remove every node an earlier run made for ``volumeNode`` (Slicer's Data module logic removes their display
    and storage nodes with them)."""
    for className in (*ROLE_CLASSES.values(), BOX_CLASS):
        for node in slicer.util.getNodesByClass(className):
            if node.GetAttribute(INPUT_VOLUME_ATTRIBUTE) == volumeNode.GetID():
                slicer.mrmlScene.RemoveNode(node)


def _adopt(nodes: DetectionNodes, volumeNode) -> None:
    """Name, tag and place the nodes next to the volume: same subject-hierarchy parent, same parent transform."""
    for role, node in zip(DetectionNodes._fields, nodes):
        _placeBeside(node, volumeNode, role, f"{volumeNode.GetName()} {NAME_SUFFIXES[role]}", role != "table")


def _adoptBoxes(boxes: list, rows: list[dict[str, str]], volumeNode) -> None:
    for node, row in zip(boxes, rows):
        _placeBeside(node, volumeNode, BOX_ROLE, f"{volumeNode.GetName()} {row['label']} box", True)


def _placeBeside(node, volumeNode, role: str, name: str, transformed: bool) -> None:
    shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
    node.SetName(name)
    node.SetAttribute(INPUT_VOLUME_ATTRIBUTE, volumeNode.GetID())
    node.SetAttribute(ROLE_ATTRIBUTE, role)
    detachStorage(node)
    if transformed:
        node.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
    shNode.SetItemParent(shNode.GetItemByDataNode(node), shNode.GetItemParent(shNode.GetItemByDataNode(volumeNode)))


def boxNodes(volumeNode) -> list:
    """The ROI nodes of the box detector run made for ``volumeNode``, in lesion order (none for other models)."""
    return [node for node in slicer.util.getNodesByClass(BOX_CLASS)
            if node.GetAttribute(INPUT_VOLUME_ATTRIBUTE) == volumeNode.GetID() and node.GetAttribute(ROLE_ATTRIBUTE) == BOX_ROLE]


def detachStorage(node) -> None:
    """Forget the temporary file the node was read from (it is deleted); saving the scene writes a new one."""
    storageNode = node.GetStorageNode()
    if storageNode is not None:
        node.SetAndObserveStorageNodeID(None)
        slicer.mrmlScene.RemoveNode(storageNode)


def setShowIn3D(segmentationNode, show: bool) -> None:
    """Show the lesions as surfaces in the 3-D views (the surfaces are computed the first time)."""
    if show:
        segmentationNode.CreateClosedSurfaceRepresentation()
    displayNode = segmentationNode.GetDisplayNode()
    if displayNode is not None:
        displayNode.SetVisibility3D(show)


def tableNodeFromRows(columnNames: list[str], rows: list[dict[str, str]], textColumns=()):
    """A read-only table node with typed columns (integers, reals, text; ``textColumns`` always text) in the CSV's
    column order."""
    tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode")
    addTypedColumns(tableNode, columnNames, rows, textColumns)
    tableNode.SetLocked(True)
    return tableNode


def addTypedColumns(tableNode, columnNames: list[str], rows: list[dict[str, str]], textColumns=()) -> None:
    """Add one column per name to ``tableNode``, typed from the rows' values (see `tableNodeFromRows`)."""
    for name in columnNames:
        values = [row[name] for row in rows]
        kind = "text" if name in textColumns else _columnKind(values)
        array = {"int": vtk.vtkIntArray, "float": vtk.vtkDoubleArray, "text": vtk.vtkStringArray}[kind]()
        array.SetName(name)
        for value in values:
            array.InsertNextValue({"int": int, "float": _float, "text": str}[kind](value))
        tableNode.AddColumn(array)


def _float(text: str) -> float:
    return float(text) if text else math.nan


def _columnKind(values: list[str]) -> str:
    present = [value for value in values if value != ""]
    if not present:
        return "text"
    if len(present) == len(values) and all(_parses(int, value) for value in present):
        return "int"
    return "float" if all(_parses(float, value) for value in present) else "text"


def _parses(kind, text: str) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


def lesionRows(tableNode) -> list[dict[str, object]]:
    """The table's rows as dictionaries (column name → value), in table order."""
    table = tableNode.GetTable()
    columns = [table.GetColumn(index) for index in range(table.GetNumberOfColumns())]
    return [{column.GetName(): column.GetValue(row) for column in columns} for row in range(table.GetNumberOfRows())]


def controlPointIndex(pointsNode, label: str) -> int:
    """Index of the control point labelled ``label`` (e.g. ``L2``), or -1."""
    for index in range(pointsNode.GetNumberOfControlPoints()):
        if pointsNode.GetNthControlPointLabel(index) == label:
            return index
    return -1
