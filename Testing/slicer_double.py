"""A small, explicit test double of the Slicer, MRML and Qt calls the LesionDetect module makes.

For headless pytest only (Slicer cannot be installed here); never shipped. `install()` puts fake ``slicer``,
``slicer.util``, ``slicer.ScriptedLoadableModule``, ``slicer.parameterNodeWrapper``, ``qt``, ``SampleData`` and
(optionally) ``PyTorchUtils`` modules into ``sys.modules``; the real ``vtk`` package supplies matrices, arrays,
tables and image data. Anything the module calls that is not listed below fails with AttributeError, so a call
that does not exist in Slicer cannot pass unnoticed. Where the double is stricter than Slicer, it says so.

Every Slicer / MRML / Qt call the module makes, and where Slicer defines it (paths in github.com/Slicer/Slicer,
CTK paths in github.com/commontk/CTK, SlicerPyTorch in github.com/fepegar/SlicerPyTorch):

===============================================================  ====================================================
call                                                             defined in
===============================================================  ====================================================
slicer.app.connect("startupCompleted()", f)                      Base/QTGUI/qSlicerApplication.h (signal)
slicer.app.temporaryPath                                         Base/QTCore/qSlicerCoreApplication.h (property)
slicer.app.processEvents()                                       QCoreApplication (Qt)
slicer.mrmlScene.AddNewNodeByClass(className[, name])            Libs/MRML/Core/vtkMRMLScene.h
slicer.mrmlScene.RemoveNode(node)                                Libs/MRML/Core/vtkMRMLScene.h
slicer.mrmlScene.GetFirstNodeByClass(className)                  Libs/MRML/Core/vtkMRMLScene.h
slicer.mrmlScene.GetSubjectHierarchyNode()                       Libs/MRML/Core/vtkMRMLScene.h (used so in
                                                                 Base/Python/slicer/util.py getSubjectHierarchyItemChildren)
slicer.mrmlScene.StartCloseEvent / EndCloseEvent, AddObserver    Libs/MRML/Core/vtkMRMLScene.h (vtkObject)
slicer.mrmlScene.Clear() (self-test)                             Libs/MRML/Core/vtkMRMLScene.h
shNode.GetItemByDataNode / GetItemParent / SetItemParent         Libs/MRML/Core/vtkMRMLSubjectHierarchyNode.h
node.GetID / GetName / SetName / GetAttribute / SetAttribute     Libs/MRML/Core/vtkMRMLNode.h
node.GetScene()                                                  Libs/MRML/Core/vtkMRMLNode.h
node.GetStorageNode / SetAndObserveStorageNodeID                 Libs/MRML/Core/vtkMRMLStorableNode.h (removal as in
                                                                 Modules/Scripted/SampleData/SampleData.py loadNode)
node.GetTransformNodeID / SetAndObserveTransformNodeID           Libs/MRML/Core/vtkMRMLTransformableNode.h
node.CreateDefaultDisplayNodes / GetDisplayNode                  Libs/MRML/Core/vtkMRMLDisplayableNode.h
displayNode.SetVisibility3D(bool)                                Libs/MRML/Core/vtkMRMLDisplayNode.h
volumeNode.GetImageData()                                        Libs/MRML/Core/vtkMRMLVolumeNode.h
imageData.GetDimensions / GetNumberOfScalarComponents            VTK vtkImageData (real vtk here)
segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode Libs/MRML/Core/vtkMRMLSegmentationNode.h
segmentationNode.CreateClosedSurfaceRepresentation()             Libs/MRML/Core/vtkMRMLSegmentationNode.h
segmentationNode.GetSegmentation().GetNumberOfSegments() (tests) Libs/MRML/Core/vtkMRMLSegmentationNode.h,
                                                                 Libs/vtkSegmentationCore/vtkSegmentation.h
transformNode.SetMatrixTransformToParent(matrix) (self-test)     Libs/MRML/Core/vtkMRMLTransformNode.h
markupsNode.GetNumberOfControlPoints / GetNthControlPointLabel   Modules/Loadable/Markups/MRML/vtkMRMLMarkupsNode.h
markupsNode.GetNthControlPointPositionWorld (self-test, tests)   Modules/Loadable/Markups/MRML/vtkMRMLMarkupsNode.h
tableNode.AddColumn / GetTable / SetLocked / GetNumberOfRows     Libs/MRML/Core/vtkMRMLTableNode.h
vtkIntArray / vtkDoubleArray / vtkStringArray InsertNextValue,   VTK (real vtk here, as in Slicer)
  GetValue; vtkTable GetColumn / GetNumberOfColumns;
  vtkTransform RotateZ / Translate / GetMatrix, vtkMatrix4x4
  MultiplyPoint (self-test)
slicer.util.exportNode(node, fileName, properties, world)        Base/Python/slicer/util.py → qSlicerCoreIOManager::
                                                                 exportNodes (temporary scene; node's storage untouched);
                                                                 "useCompression" read by qSlicerNodeWriter::write
slicer.util.loadSegmentation(fileName)                           Base/Python/slicer/util.py (raises on failure)
slicer.util.loadMarkups(fileName)                                Base/Python/slicer/util.py
slicer.util.getNodesByClass(className)                           Base/Python/slicer/util.py
slicer.util.loadUI(path) / childWidgetVariables(widget)          Base/Python/slicer/util.py
slicer.util.errorDisplay(text, windowTitle=…)                    Base/Python/slicer/util.py
slicer.util.warningDisplay(text, windowTitle=…)                  Base/Python/slicer/util.py
slicer.util.confirmOkCancelDisplay(text, windowTitle=…)          Base/Python/slicer/util.py
slicer.util.tryWithErrorDisplay(message, waitCursor=…)           Base/Python/slicer/util.py (shows, then re-raises)
slicer.util.pip_install(requirements)                            Base/Python/slicer/util.py (→ slicer.packaging)
slicer.util.VTKObservationMixin                                  Base/Python/slicer/util.py
slicer.util.addVolumeFromArray (self-test, tests)                Base/Python/slicer/util.py
slicer.modules.markups.logic().JumpSlicesToNthPointInMarkup(     Modules/Loadable/Markups/Logic/vtkSlicerMarkupsLogic.h
    id, n, centered)                                             (uses GetNthControlPointPositionWorld)
ScriptedLoadableModule / …Widget / …Logic / …Test                Base/Python/slicer/ScriptedLoadableModule.py
ScriptedLoadableModuleLogic.getParameterNode()                   Base/Python/slicer/ScriptedLoadableModule.py
ScriptedLoadableModuleWidget.resourcePath, self.parent.isEntered Base/Python/slicer/ScriptedLoadableModule.py;
                                                                 isEntered: qSlicerAbstractModuleWidget (property)
parameterNodeWrapper, WithinRange, connectGui / disconnectGui    Base/Python/slicer/parameterNodeWrapper/wrapper.py,
                                                                 validators.py, guiConnectors.py (QDoubleSpinBox,
                                                                 ctkSliderWidget ↔ float, QComboBox ↔ Enum with a
                                                                 ``label`` function, QCheckBox ↔ bool,
                                                                 qMRMLNodeComboBox ↔ node), serializers.py (Enum by name)
SampleData.SampleDataLogic.registerCustomSampleDataSource(…)     Modules/Scripted/SampleData/SampleData.py (file:// URIs
                                                                 are fetched with urllib; checksums "SHA256:<hex>")
PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation)   SlicerPyTorch PyTorchUtils/PyTorchUtils.py (returns
                                                                 the torch module, or None when declined)
qt.QTimer(): setInterval, connect("timeout()", f), start, stop   Qt QTimer (PythonQt connect syntax)
qt.QTableWidgetItem(text).text()                                 Qt QTableWidgetItem
widgets of LesionDetect.ui: connect("signal(args)", f), text,    Qt / CTK / qMRMLWidgets (QComboBox addItem/itemData/
  enabled, value, currentIndex, setVisible, blockSignals, …      count/clear, QTableWidget setRowCount/setItem/item,
                                                                 qMRMLNodeComboBox currentNode/setCurrentNode, …)
===============================================================  ====================================================

File formats the double reads and writes the way Slicer does: NRRD volumes in LPS with ``space directions`` per
axis (vtkMRMLVolumeArchetypeStorageNode), ``.seg.nrrd`` with ``Segment<N>_*`` fields
(vtkMRMLSegmentationStorageNode; the double requires the segment fields, Slicer also accepts bare label maps),
``.mrk.json`` with a per-markup ``coordinateSystem`` (LPS by default, RAS allowed; markups-schema-v1.0.3).
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import json
import os
import re
import sys
import types
import typing
import unittest
import xml.etree.ElementTree as ElementTree

import numpy as np
import vtk
from vtk.util import numpy_support

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _matrixToArray(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _arrayToMatrix(array) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r][c]))
    return matrix


#
# MRML nodes
#


class Node:
    """vtkMRMLNode: ID, name, attributes, scene, observers."""

    classNames: tuple[str, ...] = ("vtkMRMLNode",)

    def __init__(self):
        self.id: str | None = None
        self.name = ""
        self.attributes: dict[str, str] = {}
        self.scene: Scene | None = None
        self._observers: dict[int, tuple[int, typing.Callable]] = {}

    def GetClassName(self) -> str:
        return self.classNames[0]

    def IsA(self, className: str) -> bool:
        return className in self.classNames

    def GetID(self):
        return self.id

    def GetName(self):
        return self.name

    def SetName(self, name):
        self.name = name

    def GetAttribute(self, name):
        return self.attributes.get(name)

    def SetAttribute(self, name, value):
        self.attributes[name] = value

    def GetScene(self):
        return self.scene

    def AddObserver(self, event, callback, priority=0.0):
        tag = len(self._observers) + 1 + max(self._observers, default=0)
        self._observers[tag] = (event, callback)
        return tag

    def RemoveObserver(self, tag):
        self._observers.pop(tag, None)

    def Modified(self):
        for event, callback in list(self._observers.values()):
            if event == vtk.vtkCommand.ModifiedEvent:
                callback(self, event)


class StorageNode(Node):
    classNames = ("vtkMRMLStorageNode", "vtkMRMLNode")

    def __init__(self, fileName=""):
        super().__init__()
        self.fileName = fileName

    def GetFileName(self):
        return self.fileName


class DisplayNode:
    """vtkMRMLDisplayNode (kept out of the scene's node list in this double)."""

    def __init__(self):
        self.visibility3D = True

    def SetVisibility3D(self, visible):
        self.visibility3D = bool(visible)

    def GetVisibility3D(self):
        return self.visibility3D


class StorableNode(Node):
    def __init__(self):
        super().__init__()
        self.storageNodeID = None
        self.displayNode = None

    def GetStorageNode(self):
        return self.scene.GetNodeByID(self.storageNodeID) if self.scene and self.storageNodeID else None

    def SetAndObserveStorageNodeID(self, storageNodeID):
        self.storageNodeID = storageNodeID

    def CreateDefaultDisplayNodes(self):
        if self.displayNode is None:
            self.displayNode = DisplayNode()

    def GetDisplayNode(self):
        return self.displayNode


class TransformableNode(StorableNode):
    def __init__(self):
        super().__init__()
        self.transformNodeID = None

    def GetTransformNodeID(self):
        return self.transformNodeID

    def SetAndObserveTransformNodeID(self, transformNodeID):
        if transformNodeID is not None and (self.scene is None or self.scene.GetNodeByID(transformNodeID) is None):
            raise ValueError(f"no transform node {transformNodeID} in the scene")
        self.transformNodeID = transformNodeID

    def GetParentTransformNode(self):
        return self.scene.GetNodeByID(self.transformNodeID) if self.transformNodeID else None

    def toWorld(self) -> np.ndarray:
        """Local → world matrix through all parent transforms (linear only in this double)."""
        transform = self.GetParentTransformNode()
        if transform is None:
            return np.eye(4)
        matrix = vtk.vtkMatrix4x4()
        transform.GetMatrixTransformToWorld(matrix)
        return _matrixToArray(matrix)


class LinearTransformNode(TransformableNode):
    classNames = ("vtkMRMLLinearTransformNode", "vtkMRMLTransformNode", "vtkMRMLTransformableNode", "vtkMRMLNode")

    def __init__(self):
        super().__init__()
        self.toParent = np.eye(4)

    def SetMatrixTransformToParent(self, matrix):
        self.toParent = _matrixToArray(matrix)

    def GetMatrixTransformToWorld(self, matrix):
        matrix.DeepCopy(_arrayToMatrix(self.toWorld() @ self.toParent))
        return True


class ScalarVolumeNode(TransformableNode):
    classNames = ("vtkMRMLScalarVolumeNode", "vtkMRMLVolumeNode", "vtkMRMLDisplayableNode",
                  "vtkMRMLTransformableNode", "vtkMRMLStorableNode", "vtkMRMLNode")

    def __init__(self):
        super().__init__()
        self.imageData = None
        self.ijkToRas = np.eye(4)

    def GetImageData(self):
        return self.imageData

    def SetIJKToRASMatrix(self, matrix):
        self.ijkToRas = _matrixToArray(matrix)

    def GetIJKToRASMatrix(self, matrix):
        matrix.DeepCopy(_arrayToMatrix(self.ijkToRas))

    def array(self) -> np.ndarray:
        """Voxels as [k, j, i] (what slicer.util.arrayFromVolume returns)."""
        dims = self.imageData.GetDimensions()
        flat = numpy_support.vtk_to_numpy(self.imageData.GetPointData().GetScalars())
        return flat.reshape(dims[2], dims[1], dims[0])


class Segment:
    def __init__(self, name, labelValue):
        self.name, self.labelValue = name, labelValue

    def GetName(self):
        return self.name


class Segmentation:
    def __init__(self):
        self.segments: dict[str, Segment] = {}

    def GetNumberOfSegments(self):
        return len(self.segments)

    def GetNthSegmentID(self, index):
        return list(self.segments)[index]

    def GetSegment(self, segmentID):
        return self.segments.get(segmentID)


class SegmentationNode(TransformableNode):
    classNames = ("vtkMRMLSegmentationNode", "vtkMRMLDisplayableNode", "vtkMRMLTransformableNode",
                  "vtkMRMLStorableNode", "vtkMRMLNode")

    def __init__(self):
        super().__init__()
        self.segmentation = Segmentation()
        self.referenceVolume = None
        self.hasClosedSurface = False
        self.labelmap = None
        self.labelmapIjkToRas = None

    def GetSegmentation(self):
        return self.segmentation

    def SetReferenceImageGeometryParameterFromVolumeNode(self, volumeNode):
        if volumeNode is None or not volumeNode.IsA("vtkMRMLScalarVolumeNode"):
            raise TypeError("a scalar volume node is expected")
        self.referenceVolume = volumeNode

    def CreateClosedSurfaceRepresentation(self):
        self.hasClosedSurface = True
        return True


class MarkupsFiducialNode(TransformableNode):
    classNames = ("vtkMRMLMarkupsFiducialNode", "vtkMRMLMarkupsNode", "vtkMRMLDisplayableNode",
                  "vtkMRMLTransformableNode", "vtkMRMLStorableNode", "vtkMRMLNode")

    def __init__(self):
        super().__init__()
        self.controlPoints: list[dict] = []  # label, description, position (local RAS)

    def GetNumberOfControlPoints(self):
        return len(self.controlPoints)

    def GetNthControlPointLabel(self, n):
        return self.controlPoints[n]["label"]

    def GetNthControlPointDescription(self, n):
        return self.controlPoints[n]["description"]

    def GetNthControlPointPosition(self, n, position):
        position[:3] = list(self.controlPoints[n]["position"])

    def GetNthControlPointPositionWorld(self, n, position):
        local = np.append(self.controlPoints[n]["position"], 1.0)
        position[:3] = list((self.toWorld() @ local)[:3])


class TableNode(StorableNode):
    classNames = ("vtkMRMLTableNode", "vtkMRMLStorableNode", "vtkMRMLNode")

    def __init__(self):
        super().__init__()
        self.table = vtk.vtkTable()
        self.locked = False

    def GetTable(self):
        return self.table

    def AddColumn(self, column):
        self.table.AddColumn(column)
        return column

    def GetNumberOfRows(self):
        return self.table.GetNumberOfRows()

    def SetLocked(self, locked):
        self.locked = bool(locked)


class ScriptedModuleNode(Node):
    """vtkMRMLScriptedModuleNode: string parameters and node references."""

    classNames = ("vtkMRMLScriptedModuleNode", "vtkMRMLNode")

    def __init__(self):
        super().__init__()
        self.parameters: dict[str, str] = {}
        self.references: dict[str, str | None] = {}

    def GetParameter(self, name):
        return self.parameters.get(name, "")

    def SetParameter(self, name, value):
        self.parameters[name] = value
        self.Modified()

    def HasParameter(self, name):
        return name in self.parameters

    def SetNodeReferenceID(self, role, nodeID):
        self.references[role] = nodeID
        self.Modified()

    def GetNodeReference(self, role):
        nodeID = self.references.get(role)
        return self.scene.GetNodeByID(nodeID) if self.scene and nodeID else None


NODE_CLASSES = {
    cls.classNames[0]: cls
    for cls in (ScalarVolumeNode, SegmentationNode, MarkupsFiducialNode, TableNode, LinearTransformNode,
                StorageNode, ScriptedModuleNode)
}
DATA_NODE_CLASSES = ("vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode", "vtkMRMLMarkupsFiducialNode",
                     "vtkMRMLTableNode", "vtkMRMLLinearTransformNode")


#
# Scene and subject hierarchy
#


class SubjectHierarchy:
    """vtkMRMLSubjectHierarchyNode: items with a parent and optionally a data node; scene item is 1."""

    def __init__(self):
        self.items: dict[int, dict] = {1: {"parent": None, "node": None, "name": "Scene"}}

    def _newItem(self, parent, node=None, name=""):
        itemID = max(self.items) + 1
        self.items[itemID] = {"parent": parent, "node": node, "name": name}
        return itemID

    def GetSceneItemID(self):
        return 1

    def CreateSubjectItem(self, parentItemID, name):
        return self._newItem(parentItemID, name=name)

    def CreateStudyItem(self, parentItemID, name):
        return self._newItem(parentItemID, name=name)

    def GetItemByDataNode(self, node):
        return next((itemID for itemID, item in self.items.items() if item["node"] is node), 0)

    def GetItemDataNode(self, itemID):
        return self.items[itemID]["node"]

    def GetItemParent(self, itemID):
        return self.items[itemID]["parent"] if itemID in self.items else 0

    def SetItemParent(self, itemID, parentItemID):
        if itemID not in self.items or parentItemID not in self.items:
            raise KeyError(f"invalid subject hierarchy item {itemID} or parent {parentItemID}")
        self.items[itemID]["parent"] = parentItemID


class Scene:
    """vtkMRMLScene: nodes by ID, events, subject hierarchy (data nodes get an item under the scene item)."""

    StartCloseEvent = 66000
    EndCloseEvent = 66001

    def __init__(self):
        self.nodes: dict[str, Node] = {}
        self._counter = 0
        self._observers: dict[int, tuple[int, typing.Callable]] = {}
        self.subjectHierarchy = SubjectHierarchy()

    def AddNode(self, node):
        self._counter += 1
        node.id = f"{node.classNames[0]}{self._counter}"
        node.scene = self
        self.nodes[node.id] = node
        if node.classNames[0] in DATA_NODE_CLASSES:
            self.subjectHierarchy._newItem(1, node, node.name)
        return node

    def AddNewNodeByClass(self, className, name=""):
        node = NODE_CLASSES[className]()
        node.name = name
        return self.AddNode(node)

    def RemoveNode(self, node):
        if node is None or self.nodes.get(node.id) is not node:
            return
        del self.nodes[node.id]
        itemID = self.subjectHierarchy.GetItemByDataNode(node)
        self.subjectHierarchy.items.pop(itemID, None)
        node.scene = None

    def Clear(self, removeSingletons=0):
        for node in list(self.nodes.values()):
            self.RemoveNode(node)

    def GetNodeByID(self, nodeID):
        return self.nodes.get(nodeID)

    def GetFirstNodeByClass(self, className):
        return next((node for node in self.nodes.values() if node.IsA(className)), None)

    def GetSubjectHierarchyNode(self):
        return self.subjectHierarchy

    def AddObserver(self, event, callback, priority=0.0):
        tag = max(self._observers, default=0) + 1
        self._observers[tag] = (event, callback)
        return tag

    def RemoveObserver(self, tag):
        self._observers.pop(tag, None)

    def snapshot(self):
        """Test helper: what a reader of the scene sees (IDs, names, attributes, SH parents)."""
        sh = self.subjectHierarchy
        return sorted(
            (node.id, node.name, tuple(sorted(node.attributes.items())), sh.GetItemParent(sh.GetItemByDataNode(node)))
            for node in self.nodes.values()
        )


#
# File I/O the way Slicer's storage nodes do it
#


def writeVolumeNrrd(volumeNode: ScalarVolumeNode, fileName: str, useCompression: bool) -> None:
    """vtkMRMLVolumeArchetypeStorageNode: the node's own IJK→RAS (no parent transform), written in LPS."""
    import nrrd

    ijkToLps = LPS_TO_RAS @ volumeNode.ijkToRas
    header = {
        "space": "left-posterior-superior",
        "space directions": ijkToLps[:3, :3].T,  # one row per axis i, j, k
        "space origin": ijkToLps[:3, 3],
        "kinds": ["domain"] * 3,
        "encoding": "gzip" if useCompression else "raw",
    }
    nrrd.write(fileName, np.ascontiguousarray(volumeNode.array()), header, index_order="C")


def _ijkToRasFromNrrd(header) -> np.ndarray:
    space = header.get("space", "left-posterior-superior")
    if space not in ("left-posterior-superior", "right-anterior-superior"):
        raise RuntimeError(f"unsupported NRRD space {space!r}")
    directions = np.asarray(header["space directions"], dtype=float)
    directions = directions[~np.isnan(directions).any(axis=1)]  # drop a "none" list axis
    matrix = np.eye(4)
    matrix[:3, :3] = directions.T
    matrix[:3, 3] = header["space origin"]
    return LPS_TO_RAS @ matrix if space == "left-posterior-superior" else matrix


def readSegmentationNrrd(fileName: str) -> SegmentationNode:
    """vtkMRMLSegmentationStorageNode, reduced: one label layer and its ``Segment<N>_`` fields."""
    import nrrd

    try:
        labels, header = nrrd.read(fileName, index_order="C")
    except Exception as error:
        raise RuntimeError(f"Failed to load node from file: {fileName}\n{error}") from None
    indices = sorted({int(match.group(1)) for key in header if (match := re.match(r"Segment(\d+)_ID$", key))})
    if not indices:
        raise RuntimeError(f"Failed to load node from file: {fileName}\n(no Segment<N>_ID fields; stricter than Slicer)")
    node = SegmentationNode()
    for index in indices:
        segmentID = header[f"Segment{index}_ID"]
        labelValue = int(header.get(f"Segment{index}_LabelValue", 1))
        node.segmentation.segments[segmentID] = Segment(header.get(f"Segment{index}_Name", segmentID), labelValue)
    node.labelmap = labels
    node.labelmapIjkToRas = _ijkToRasFromNrrd(header)
    return node


def readMarkupsJson(fileName: str) -> MarkupsFiducialNode:
    """vtkMRMLMarkupsJsonStorageNode, reduced to point lists: positions in the file's coordinate system → RAS."""
    try:
        with open(fileName, encoding="utf-8") as file:
            document = json.load(file)
        markup = document["markups"][0]
    except Exception as error:
        raise RuntimeError(f"Failed to load node from file: {fileName}\n{error}") from None
    if "@schema" not in document or markup.get("type") != "Fiducial":
        raise RuntimeError(f"Failed to load node from file: {fileName}\n(not a markups point list)")
    system = markup.get("coordinateSystem", "LPS")
    if system not in ("LPS", "RAS"):
        raise RuntimeError(f"unknown coordinateSystem {system!r}")
    scale = 0.001 if markup.get("coordinateUnits", "mm") == "um" else 1.0
    node = MarkupsFiducialNode()
    node.name = markup.get("name", "")
    for point in markup.get("controlPoints", []):
        position = np.asarray(point["position"], dtype=float) * scale
        if system == "LPS":
            position = position * np.array([-1.0, -1.0, 1.0])
        node.controlPoints.append(
            {"label": point.get("label", ""), "description": point.get("description", ""), "position": position}
        )
    return node


#
# slicer.util
#


class VTKObservationMixin:
    def __init__(self):
        super().__init__()
        self._doubleObservations: list[tuple[object, int, typing.Callable, int]] = []

    def addObserver(self, obj, event, method, group="none", priority=0.0):
        tag = obj.AddObserver(event, method, priority)
        self._doubleObservations.append((obj, event, method, tag))

    def removeObserver(self, obj, event, method):
        for entry in list(self._doubleObservations):
            if entry[:3] == (obj, event, method):
                obj.RemoveObserver(entry[3])
                self._doubleObservations.remove(entry)

    def removeObservers(self, method=None):
        for obj, event, observed, tag in list(self._doubleObservations):
            if method is None or observed == method:
                obj.RemoveObserver(tag)
                self._doubleObservations.remove((obj, event, observed, tag))


class SlicerDouble:
    """The state behind the fake modules: scene, app, recorded calls, and answers tests can set."""

    def __init__(self, temporaryPath: str):
        self.scene = Scene()
        self.temporaryPath = temporaryPath
        self.calls: list[tuple] = []
        self.confirmAnswer = True
        self.pipInstallHook: typing.Callable[[str], None] | None = None

    def record(self, *call):
        self.calls.append(call)

    def callsNamed(self, name):
        return [call for call in self.calls if call[0] == name]


def _makeUtil(state: SlicerDouble) -> types.ModuleType:
    util = types.ModuleType("slicer.util")
    util.VTKObservationMixin = VTKObservationMixin

    def exportNode(node, filename, properties={}, world=False):  # noqa: B006 (mirrors Slicer's signature)
        state.record("exportNode", node.GetID(), filename, dict(properties), world)
        if world:
            raise NotImplementedError("the double exports in the node's own coordinates only")
        if node.scene is not state.scene or not filename.endswith(".nrrd"):
            return False
        writeVolumeNrrd(node, filename, bool(properties.get("useCompression", 1)))
        return True

    def _load(node, fileName):
        state.scene.AddNode(node)
        node.CreateDefaultDisplayNodes()
        storage = state.scene.AddNode(StorageNode(fileName))
        node.SetAndObserveStorageNodeID(storage.id)
        return node

    def loadSegmentation(filename, properties={}, returnNode=False):  # noqa: B006
        state.record("loadSegmentation", filename)
        node = readSegmentationNrrd(filename)
        node.name = properties.get("name", os.path.basename(filename).split(".")[0])
        return _load(node, filename)

    def loadMarkups(filename):
        state.record("loadMarkups", filename)
        return _load(readMarkupsJson(filename), filename)

    def getNodesByClass(className, scene=None):
        return [node for node in (scene or state.scene).nodes.values() if node.IsA(className)]

    def addVolumeFromArray(narray, ijkToRAS=None, name=None, nodeClassName=None):
        node = state.scene.AddNewNodeByClass(nodeClassName or "vtkMRMLScalarVolumeNode", name or "")
        if ijkToRAS is not None:
            node.SetIJKToRASMatrix(ijkToRAS if isinstance(ijkToRAS, vtk.vtkMatrix4x4) else _arrayToMatrix(ijkToRAS))
        narray = np.ascontiguousarray(narray)
        imageData = vtk.vtkImageData()
        imageData.SetDimensions(narray.shape[2], narray.shape[1], narray.shape[0])
        scalars = numpy_support.numpy_to_vtk(narray.ravel(), deep=True)
        imageData.GetPointData().SetScalars(scalars)
        node.imageData = imageData
        node.CreateDefaultDisplayNodes()
        return node

    def errorDisplay(text, windowTitle=None, parent=None, standardButtons=None, **kwargs):
        state.record("errorDisplay", text, windowTitle)

    def warningDisplay(text, windowTitle=None, parent=None, standardButtons=None, **kwargs):
        state.record("warningDisplay", text, windowTitle)

    def confirmOkCancelDisplay(text, windowTitle=None, parent=None, **kwargs):
        state.record("confirmOkCancelDisplay", text, windowTitle)
        return state.confirmAnswer

    @contextlib.contextmanager
    def tryWithErrorDisplay(message=None, show=True, waitCursor=False):
        try:
            yield
        except Exception as error:
            if show:
                errorDisplay(f"{message}\n\n{error}" if message is not None else str(error))
            raise

    def pip_install(requirements, **kwargs):
        state.record("pip_install", requirements)
        if state.pipInstallHook is not None:
            state.pipInstallHook(requirements)

    def delayDisplay(message, autoCloseMsec=1000, parent=None, **kwargs):
        state.record("delayDisplay", message)

    def loadUI(path):
        return _loadUi(path)

    def childWidgetVariables(widget):
        ui = types.SimpleNamespace()
        for child in widget.descendants():
            if child.name:
                setattr(ui, child.name, child)
        return ui

    for function in (exportNode, loadSegmentation, loadMarkups, getNodesByClass, addVolumeFromArray, errorDisplay, warningDisplay,
                     confirmOkCancelDisplay, tryWithErrorDisplay, pip_install, delayDisplay, loadUI,
                     childWidgetVariables):
        setattr(util, function.__name__, function)
    return util


#
# Qt widgets of LesionDetect.ui (only what the module uses)
#


class Widget:
    """Common QWidget behaviour: name, text, enabled, visibility, signals via connect("sig(args)", slot)."""

    def __init__(self, className="QWidget", name=""):
        self.className, self.name = className, name
        self.text, self.toolTip, self.enabled, self.visible = "", "", True, True
        self.children: list[Widget] = []
        self._slots: dict[str, list] = {}
        self._dynamicProperties: dict[str, object] = {}
        self._signalsBlocked = False
        self.scene = None

    def connect(self, signature, slot):
        self._slots.setdefault(signature, []).append(slot)

    def disconnect(self, signature, slot):
        self._slots.get(signature, []).remove(slot)

    def emit(self, signature, *args):
        """Test helper and internal: call the slots connected to ``signature``.

        Like PythonQt, a slot that takes fewer arguments than the signal carries gets only the first ones
        (Slicer's module template connects "clicked(bool)" to ``onApplyButton(self)``).
        """
        if not self._signalsBlocked:
            for slot in list(self._slots.get(signature, [])):
                slot(*args[:_positionalCapacity(slot, len(args))])

    def blockSignals(self, block):
        previous, self._signalsBlocked = self._signalsBlocked, bool(block)
        return previous

    def property(self, name):
        return self._dynamicProperties.get(name)

    def setVisible(self, visible):
        self.visible = bool(visible)

    def setMRMLScene(self, scene):
        self.scene = scene
        for child in self.descendants():
            if child is not self and isinstance(child, NodeComboBox):
                child.setMRMLScene(scene)

    def descendants(self):
        yield self
        for child in self.children:
            yield from child.descendants()


def _positionalCapacity(slot, available: int) -> int:
    parameters = inspect.signature(slot).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return available
    return min(available, sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters))


class Layout:
    def __init__(self, owner):
        self.owner = owner

    def addWidget(self, widget):
        self.owner.children.append(widget)


class PushButton(Widget):
    def click(self):
        self.emit("clicked(bool)", False)


class ValueWidget(Widget):
    """ctkSliderWidget / QDoubleSpinBox / QProgressBar: a clamped numeric value with valueChanged(double)."""

    def __init__(self, className, name):
        super().__init__(className, name)
        self.minimum, self.maximum, self._value = 0.0, 99.99 if className == "QDoubleSpinBox" else 100.0, 0.0

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, value):
        value = min(max(float(value), self.minimum), self.maximum)
        if value != self._value:
            self._value = value
            self.emit("valueChanged(double)", value)


class CheckBox(Widget):
    def __init__(self, className, name):
        super().__init__(className, name)
        self._checked = False

    @property
    def checked(self):
        return self._checked

    @checked.setter
    def checked(self, checked):
        if bool(checked) != self._checked:
            self._checked = bool(checked)
            self.emit("toggled(bool)", self._checked)


class ComboBox(Widget):
    def __init__(self, className, name):
        super().__init__(className, name)
        self.items: list[tuple[str, object]] = []
        self._currentIndex = -1

    @property
    def count(self):
        return len(self.items)

    @property
    def currentIndex(self):
        return self._currentIndex

    @currentIndex.setter
    def currentIndex(self, index):
        if not -1 <= index < len(self.items):
            raise IndexError(index)
        if index != self._currentIndex:
            self._currentIndex = index
            self.emit("currentIndexChanged(int)", index)

    @property
    def currentText(self):
        return self.items[self._currentIndex][0] if self._currentIndex >= 0 else ""

    def addItem(self, text, userData=None):
        self.items.append((text, userData))
        if self._currentIndex == -1:
            self.currentIndex = 0

    def clear(self):
        self.items = []
        self.currentIndex = -1

    def itemData(self, index):
        return self.items[index][1] if 0 <= index < len(self.items) else None  # Qt: an invalid QVariant

    def itemText(self, index):
        return self.items[index][0]


class NodeComboBox(Widget):
    """qMRMLNodeComboBox: selects one node of nodeTypes from the scene."""

    def __init__(self, className, name):
        super().__init__(className, name)
        self.nodeTypes: list[str] = []
        self._current = None

    def currentNode(self):
        return self._current

    def setCurrentNode(self, node):
        if node is not self._current:
            self._current = node
            self.emit("currentNodeChanged(vtkMRMLNode*)", node)


class TableWidgetItem:
    def __init__(self, text=""):
        self._text = str(text)

    def text(self):
        return self._text


class TableWidget(Widget):
    def __init__(self, className, name):
        super().__init__(className, name)
        self.columnCount, self._rowCount, self.cells = 0, 0, {}

    def setRowCount(self, rows):
        self._rowCount = rows
        self.cells = {key: item for key, item in self.cells.items() if key[0] < rows}

    def rowCount(self):
        return self._rowCount

    def setItem(self, row, column, item):
        if not (0 <= row < self._rowCount and 0 <= column < self.columnCount):
            raise IndexError((row, column))
        self.cells[(row, column)] = item

    def item(self, row, column):
        return self.cells.get((row, column))


WIDGET_CLASSES = {
    "QPushButton": PushButton, "ctkSliderWidget": ValueWidget, "QDoubleSpinBox": ValueWidget,
    "QProgressBar": ValueWidget, "QCheckBox": CheckBox, "QComboBox": ComboBox, "qMRMLNodeComboBox": NodeComboBox,
    "QTableWidget": TableWidget,
}
PLAIN_WIDGETS = {"qMRMLWidget", "ctkCollapsibleButton", "QLabel", "QWidget"}


def _loadUi(path: str) -> Widget:
    """Build widgets from a Qt Designer file: names, classes, standard and dynamic (stdset=0) properties."""
    if not os.path.isfile(path):
        raise RuntimeError(f"Could not load UI file: file not found {path}")
    root = ElementTree.parse(path).getroot().find("widget")

    def build(element):
        className, name = element.get("class"), element.get("name")
        if className not in WIDGET_CLASSES and className not in PLAIN_WIDGETS:
            raise RuntimeError(f"the test double has no fake for {className} ({name})")
        widget = WIDGET_CLASSES.get(className, Widget)(className, name)
        for prop in element.findall("property"):
            value = _propertyValue(prop)
            if prop.get("stdset") == "0":
                widget._dynamicProperties[prop.get("name")] = value
            elif prop.get("name") in ("text", "toolTip", "enabled", "minimum", "maximum", "value", "columnCount",
                                      "nodeTypes"):
                setattr(widget, prop.get("name"), value)
        if isinstance(widget, TableWidget):
            widget.columnCount = max(widget.columnCount, len(element.findall("column")))
        for child in element.iter("widget"):
            if child is not element and _parentWidget(element, child):
                widget.children.append(build(child))
        return widget

    return build(root)


def _parentWidget(parent, child) -> bool:
    """True when ``child`` is a direct widget descendant of ``parent`` (through layouts and items only)."""
    for element in parent:
        if element is child:
            return True
        if element.tag in ("layout", "item") and _parentWidget(element, child):
            return True
    return False


def _propertyValue(prop):
    value = prop[0]
    if value.tag == "string":
        return value.text or ""
    if value.tag == "bool":
        return value.text == "true"
    if value.tag == "number":
        return int(value.text)
    if value.tag == "double":
        return float(value.text)
    if value.tag == "stringlist":
        return [item.text for item in value]
    return value.text


#
# slicer.parameterNodeWrapper (reduced: the types LesionDetect uses)
#


class WithinRange:
    def __init__(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum

    def validate(self, value):
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"value {value} is not within [{self.minimum}, {self.maximum}]")


def parameterNodeWrapper(cls):
    """Typed properties over a vtkMRMLScriptedModuleNode, and GUI binding by the ``SlicerParameterName`` property."""
    hints = typing.get_type_hints(cls, include_extras=True)
    parameters = {}
    for name, hint in hints.items():
        baseType, validators = hint, []
        if typing.get_origin(hint) is typing.Annotated:
            baseType, *annotations = typing.get_args(hint)
            validators = [a for a in annotations if isinstance(a, WithinRange)]
        default = cls.__dict__.get(name)
        if default is None and isinstance(baseType, type) and issubclass(baseType, enum.Enum):
            default = next(iter(baseType))
        parameters[name] = (baseType, validators, default)

    def serialize(node, name, value):
        baseType, validators, _ = parameters[name]
        if isinstance(baseType, type) and issubclass(baseType, Node):
            if value is not None and not value.IsA(baseType.classNames[0]):
                raise TypeError(f"{name} must be a {baseType.classNames[0]}")
            node.SetParameter(name, "")
            node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
            return
        if not isinstance(value, baseType if baseType is not float else (int, float)):
            raise TypeError(f"{name} must be {baseType.__name__}, not {type(value).__name__}")
        for validator in validators:
            validator.validate(value)
        node.SetParameter(name, value.name if isinstance(value, enum.Enum) else str(value))

    def deserialize(node, name):
        baseType = parameters[name][0]
        if isinstance(baseType, type) and issubclass(baseType, Node):
            return node.GetNodeReference(name)
        text = node.GetParameter(name)
        if baseType is bool:
            return text == "True"
        if issubclass(baseType, enum.Enum):
            return baseType[text]
        return baseType(text)

    def __init__(self, parameterNode):
        self.parameterNode = parameterNode
        self._guis = {}
        for name, (_, _, default) in parameters.items():
            if not parameterNode.HasParameter(name):
                serialize(parameterNode, name, default)

    def makeProperty(name):
        return property(lambda self: deserialize(self.parameterNode, name),
                        lambda self, value: serialize(self.parameterNode, name, value))

    def connectGui(self, gui):
        bindings = {w.property("SlicerParameterName"): w for w in vars(gui).values()
                    if isinstance(w, Widget) and w.property("SlicerParameterName")}
        for name, widget in bindings.items():
            _bind(self, name, parameters[name], widget)
        tag = len(self._guis) + 1
        self._guis[tag] = bindings
        self.parameterNode.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda caller, event: _updateGui(self, tag))
        _updateGui(self, tag)
        return tag

    def disconnectGui(self, tag):
        self._guis.pop(tag, None)

    cls.__init__ = __init__
    cls.connectGui = connectGui
    cls.disconnectGui = disconnectGui
    cls.AddObserver = lambda self, event, callback, priority=0.0: self.parameterNode.AddObserver(event, callback)
    cls.RemoveObserver = lambda self, tag: self.parameterNode.RemoveObserver(tag)
    for name in parameters:
        setattr(cls, name, makeProperty(name))
    return cls


def _bind(wrapper, name, parameter, widget):
    baseType, validators, _ = parameter
    if isinstance(widget, NodeComboBox) and issubclass(baseType, Node):
        widget.connect("currentNodeChanged(vtkMRMLNode*)", lambda node: _guiChanged(wrapper, name, node))
    elif isinstance(widget, ValueWidget) and widget.className != "QProgressBar" and baseType is float:
        for validator in validators:
            widget.minimum, widget.maximum = validator.minimum, validator.maximum
        widget.connect("valueChanged(double)", lambda value: _guiChanged(wrapper, name, float(value)))
    elif isinstance(widget, ComboBox) and issubclass(baseType, enum.Enum):
        widget.clear()
        for member in baseType:
            widget.addItem(member.label() if hasattr(member, "label") else member.name)
        widget.connect("currentIndexChanged(int)", lambda index: _guiChanged(wrapper, name, list(baseType)[index]))
    elif isinstance(widget, CheckBox) and baseType is bool:
        widget.connect("toggled(bool)", lambda checked: _guiChanged(wrapper, name, bool(checked)))
    else:
        raise RuntimeError(f"Unable to create GUI connector from datatype '{baseType}' to widget '{widget.className}'")


def _guiChanged(wrapper, name, value):
    if not getattr(wrapper, "_updatingGui", False):
        setattr(wrapper, name, value)


def _updateGui(wrapper, tag):
    if tag not in wrapper._guis:
        return
    wrapper._updatingGui = True
    try:
        for name, widget in wrapper._guis[tag].items():
            value = getattr(wrapper, name)
            if isinstance(widget, NodeComboBox):
                widget.setCurrentNode(value)
            elif isinstance(widget, ValueWidget):
                widget.value = value
            elif isinstance(widget, ComboBox):
                widget.currentIndex = list(type(value)).index(value)
            elif isinstance(widget, CheckBox):
                widget.checked = value
    finally:
        wrapper._updatingGui = False


#
# Modules
#


class QTimer:
    """qt.QTimer: never fires on its own here; tests drive `SubprocessRunner.poll` / `wait` instead."""

    def __init__(self):
        self.interval, self.active, self._slots = 0, False, []

    def setInterval(self, milliseconds):
        self.interval = milliseconds

    def connect(self, signature, slot):
        if signature != "timeout()":
            raise ValueError(signature)
        self._slots.append(slot)

    def start(self):
        self.active = True

    def stop(self):
        self.active = False

    def isActive(self):
        return self.active


def install(temporaryPath: str) -> SlicerDouble:
    """Put the fake modules into ``sys.modules`` (replacing earlier ones) and return their shared state."""
    state = SlicerDouble(temporaryPath)

    qt = types.ModuleType("qt")
    qt.QTimer = QTimer
    qt.QTableWidgetItem = TableWidgetItem

    slicer = types.ModuleType("slicer")
    slicer.mrmlScene = state.scene
    slicer.app = types.SimpleNamespace(
        temporaryPath=temporaryPath,
        connect=lambda signal, slot: state.record("app.connect", signal, slot),
        processEvents=lambda: None,
    )
    markupsLogic = types.SimpleNamespace(
        JumpSlicesToNthPointInMarkup=lambda nodeID, n, centered=False, viewGroup=-1, exclude=None:
        state.record("JumpSlicesToNthPointInMarkup", nodeID, n, centered))
    slicer.modules = types.SimpleNamespace(markups=types.SimpleNamespace(logic=lambda: markupsLogic))
    slicer.util = _makeUtil(state)
    for className in NODE_CLASSES:
        setattr(slicer, className, NODE_CLASSES[className])

    scripted = types.ModuleType("slicer.ScriptedLoadableModule")
    scripted.ScriptedLoadableModule = ScriptedLoadableModule
    scripted.ScriptedLoadableModuleWidget = ScriptedLoadableModuleWidget
    scripted.ScriptedLoadableModuleLogic = ScriptedLoadableModuleLogic
    scripted.ScriptedLoadableModuleTest = ScriptedLoadableModuleTest
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = parameterNodeWrapper
    wrapper.WithinRange = WithinRange
    slicer.ScriptedLoadableModule, slicer.parameterNodeWrapper = scripted, wrapper

    sampleData = types.ModuleType("SampleData")
    sampleData.SampleDataLogic = types.SimpleNamespace(
        registerCustomSampleDataSource=lambda **kwargs: state.record("registerCustomSampleDataSource", kwargs))

    sys.modules.update({"qt": qt, "slicer": slicer, "slicer.util": slicer.util, "SampleData": sampleData,
                        "slicer.ScriptedLoadableModule": scripted, "slicer.parameterNodeWrapper": wrapper})
    sys.modules.pop("PyTorchUtils", None)
    _state["current"] = state
    return state


def installPyTorchUtils(state: SlicerDouble, onInstall: typing.Callable[[], object]) -> None:
    """A fake PyTorch extension whose installTorch calls ``onInstall`` (return None to act as 'declined')."""
    module = types.ModuleType("PyTorchUtils")

    class PyTorchUtilsLogic:
        def installTorch(self, askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=None):
            state.record("installTorch", askConfirmation)
            return onInstall()

    module.PyTorchUtilsLogic = PyTorchUtilsLogic
    sys.modules["PyTorchUtils"] = module


_state: dict[str, SlicerDouble] = {}


class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent
        self.moduleName = type(self).__name__


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        if parent is None:
            raise NotImplementedError("the double needs a parent widget (Slicer passes one)")
        self.moduleName = type(self).__name__.removesuffix("Widget")
        self.parent = parent
        self.layout = Layout(parent)

    def resourcePath(self, filename):
        moduleFile = sys.modules[type(self).__module__].__file__
        return os.path.join(os.path.dirname(moduleFile), "Resources", filename)

    def setup(self):
        pass


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        self.moduleName = type(self).__name__.removesuffix("Logic")

    def getParameterNode(self):
        scene = _state["current"].scene
        for node in scene.nodes.values():
            if node.IsA("vtkMRMLScriptedModuleNode") and node.GetAttribute("ModuleName") == self.moduleName:
                return node
        node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
        node.SetAttribute("ModuleName", self.moduleName)
        return node


class ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message, msec=None):
        pass
