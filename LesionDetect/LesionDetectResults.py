"""The files written by ``lesiondetect detect`` → the nodes users see, placed next to the input volume.

Geometry is never converted here: Slicer's own readers load ``<stem>.seg.nrrd`` and ``<stem>.mrk.json`` (both carry
their coordinate system), and only the measurement table is built from ``<stem>.lesions.csv``.

Parent transforms: the input volume is written without its parent transform (its own IJK→RAS only), so the files
are in the volume's local coordinates; every output node is put under the same parent transform as the volume.
The outputs therefore overlay the input exactly, also under a non-linear or later-edited transform, without
resampling the input. Table coordinates (``centroid_r/a/s``) are in that local frame; world positions are the
control points' (``GetNthControlPointPositionWorld``), which is what slice jumping uses.
"""

from __future__ import annotations

import csv
import math
import os
from typing import NamedTuple

import slicer
import vtk

INPUT_VOLUME_ATTRIBUTE = "LesionDetect.InputVolumeID"
ROLE_ATTRIBUTE = "LesionDetect.Role"
ROLE_CLASSES = {
    "segmentation": "vtkMRMLSegmentationNode",
    "points": "vtkMRMLMarkupsFiducialNode",
    "table": "vtkMRMLTableNode",
}
NAME_SUFFIXES = {"segmentation": "lesions", "points": "lesion points", "table": "lesion table"}


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
    """Remove every node an earlier run made for ``volumeNode``."""
    for className in ROLE_CLASSES.values():
        for node in slicer.util.getNodesByClass(className):
            if node.GetAttribute(INPUT_VOLUME_ATTRIBUTE) == volumeNode.GetID():
                slicer.mrmlScene.RemoveNode(node)


def loadResults(outputFolder: str, stem: str, volumeNode, showIn3D: bool = False) -> DetectionNodes:
    """Load one run's files as nodes named after ``volumeNode``, replacing that volume's previous results.

    Nothing in the scene changes unless every file loads.
    """
    paths = outputPaths(outputFolder, stem)
    missing = [os.path.basename(path) for path in paths.values() if not os.path.isfile(path)]
    if missing:
        raise RuntimeError(f"the detection finished without writing {', '.join(missing)}")
    rows = readLesionRows(paths["table"])
    created = []
    try:
        if rows:
            created.append(slicer.util.loadSegmentation(paths["segmentation"]))
            created.append(slicer.util.loadMarkups(paths["points"]))
        else:
            # No lesion: empty nodes, so that a healthy scan still gets (empty) results that replace old ones.
            for role in ("segmentation", "points"):
                node = slicer.mrmlScene.AddNewNodeByClass(ROLE_CLASSES[role])
                created.append(node)
                node.CreateDefaultDisplayNodes()
        created.append(tableNodeFromRows(rows, _columnNames(paths["table"])))
    except Exception:
        for node in created:
            _detachStorage(node)
            slicer.mrmlScene.RemoveNode(node)
        raise
    nodes = DetectionNodes(*created)
    removeResults(volumeNode)
    _adopt(nodes, volumeNode)
    nodes.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    setShowIn3D(nodes.segmentation, showIn3D)
    return nodes


def _adopt(nodes: DetectionNodes, volumeNode) -> None:
    """Name, tag and place the nodes next to the volume: same subject-hierarchy parent, same parent transform."""
    shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
    parentItem = shNode.GetItemParent(shNode.GetItemByDataNode(volumeNode))
    for role, node in zip(DetectionNodes._fields, nodes):
        node.SetName(f"{volumeNode.GetName()} {NAME_SUFFIXES[role]}")
        node.SetAttribute(INPUT_VOLUME_ATTRIBUTE, volumeNode.GetID())
        node.SetAttribute(ROLE_ATTRIBUTE, role)
        _detachStorage(node)
        if role != "table":
            node.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
        shNode.SetItemParent(shNode.GetItemByDataNode(node), parentItem)


def _detachStorage(node) -> None:
    """Forget the temporary file the node was read from (it is deleted); saving the scene writes a new one."""
    storageNode = node.GetStorageNode()
    if storageNode is not None:
        slicer.mrmlScene.RemoveNode(storageNode)
        node.SetAndObserveStorageNodeID(None)


def setShowIn3D(segmentationNode, show: bool) -> None:
    """Show the lesions as surfaces in the 3-D views (the surfaces are computed the first time)."""
    if show:
        segmentationNode.CreateClosedSurfaceRepresentation()
    displayNode = segmentationNode.GetDisplayNode()
    if displayNode is not None:
        displayNode.SetVisibility3D(show)


def readLesionRows(csvPath: str) -> list[dict[str, str]]:
    with open(csvPath, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def _columnNames(csvPath: str) -> list[str]:
    with open(csvPath, newline="", encoding="utf-8") as file:
        return next(csv.reader(file), [])


def tableNodeFromRows(rows: list[dict[str, str]], columnNames: list[str]):
    """A read-only table node with typed columns (integers, reals, text) in the CSV's column order."""
    tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode")
    for name in columnNames:
        values = [row.get(name) or "" for row in rows]
        kind = _columnKind(values)
        array = {"int": vtk.vtkIntArray, "float": vtk.vtkDoubleArray, "text": vtk.vtkStringArray}[kind]()
        array.SetName(name)
        for value in values:
            if kind == "int":
                array.InsertNextValue(int(value))
            elif kind == "float":
                array.InsertNextValue(float(value) if value else math.nan)
            else:
                array.InsertNextValue(value)
        tableNode.AddColumn(array)
    tableNode.SetLocked(True)
    return tableNode


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
