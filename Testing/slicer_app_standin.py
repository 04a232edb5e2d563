"""The application object for headless tests of the LesionDetect module: ``slicer.app`` and ``slicer.modules``
around a real MRML scene (the ``slicer-core`` wheel) with the module logics Slicer runs, and Qt from `qt_standin`.

Everything else is real: the scene, nodes, storage nodes and module logics of slicer-core, and Slicer's
``slicer.util``, ``ScriptedLoadableModule`` and ``parameterNodeWrapper`` sources. Where the stand-in does what
Slicer's C++ Qt code does, it calls the same VTK logic:

- ``coreIOManager().loadNodes``: ``vtkSlicerSegmentationsModuleLogic.LoadSegmentationFromFile``,
  ``vtkSlicerMarkupsLogic.LoadMarkups`` and ``vtkSlicerTransformLogic.AddTransform`` (qSlicerSegmentationsReader,
  qSlicerMarkupsReader, qSlicerTransformsReader);
- ``coreIOManager().exportNodes``: a temporary scene, ``CopyContent``, the node's default storage node and
  ``WriteData`` (qSlicerCoreIOManager::exportNodes, qSlicerNodeWriter::write);
- subject-hierarchy items for new data nodes, removed with them (qSlicerSubjectHierarchyPluginLogic);
- the slice views of the default layout (vtkMRMLSliceLogic), which slice jumping moves.

Without a main window, ``slicer.util.errorDisplay`` and ``warningDisplay`` only log, as in Slicer.
"""

from __future__ import annotations

import os
import sys
import time
import types

import vtk
from qt_standin import QDialog, QFileDialog, QTimer, ctk, ctkMessageBox, qMRMLWidget, qt

INJECTION_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slicer_injection")
"""Holds ``slicer/slicer_qt_standin.py``: slicer-core's ``slicer`` package imports every module of a ``slicer``
folder on ``sys.path`` (its documented extension point), so the qMRML classes land in ``slicer``."""


class qSlicerScriptedLoadableModuleWidget(qMRMLWidget):
    """A scripted module's panel: ``self()`` is the Python widget object, ``isEntered`` its shown state."""

    isEntered = False

    def self(self):
        return self._python


class qSlicerScriptedLoadableModule:
    """A loaded scripted module: its metadata (set by the Python module class) and its panel, made on demand."""

    def __init__(self, path, widgetClass):
        self.path, self.name, self._widgetClass, self._widget = path, os.path.basename(path)[:-3], widgetClass, None

    def widgetRepresentation(self):
        if self._widget is None:
            self._widget = qSlicerScriptedLoadableModuleWidget()
            self._widget._python = self._widgetClass(self._widget)
            self._widget._python.setup()
        return self._widget


#
# The application
#


class CoreIOManager:
    def __init__(self, app):
        self.app = app

    def loadNodes(self, fileType, properties, loadedNodes, userMessages):
        fileName, name = properties["fileName"], properties.get("name", "")
        if fileType == "SegmentationFile":
            node = self.app.logics["Segmentations"].LoadSegmentationFromFile(
                fileName, properties.get("autoOpacities", True), name, None)
            nodes = [node] if node else []
        elif fileType == "MarkupsFile":
            ids = self.app.logics["Markups"].LoadMarkups(fileName, name, userMessages)
            nodes = [self.app.mrmlScene.GetNodeByID(nodeID) for nodeID in (ids or "").split(",") if nodeID]
        elif fileType == "TransformFile":
            node = self.app.logics["Transforms"].AddTransform(fileName, self.app.mrmlScene, userMessages)
            nodes = [node] if node else []
        else:
            raise NotImplementedError(f"the stand-in IO manager cannot load {fileType}")
        for node in nodes:
            loadedNodes.AddItem(node)
        return bool(nodes)

    def exportNodes(self, nodeIDs, fileNames, properties, hardenTransforms, userMessages):
        if hardenTransforms:
            raise NotImplementedError("the stand-in IO manager exports without hardening transforms only")
        import slicer

        scene = self.app.mrmlScene
        temporary = slicer.vtkMRMLScene()
        scene.CopyDefaultNodesToScene(temporary)
        scene.CopyRegisteredNodesToScene(temporary)
        scene.CopySingletonNodesToScene(temporary)
        success = True
        for nodeID, fileName in zip(nodeIDs, fileNames):
            node = scene.GetNodeByID(nodeID)
            copy = temporary.AddNewNodeByClass(node.GetClassName())
            copy.CopyContent(node, False)
            copy.AddDefaultStorageNode()
            storage = copy.GetStorageNode()
            storage.SetFileName(fileName)
            storage.SetWriteFileFormat(properties["fileFormat"])
            if "useCompression" in properties:
                storage.SetUseCompression(int(properties["useCompression"]))
            success = bool(storage.WriteData(copy)) and success
            userMessages.AddMessages(storage.GetUserMessages())
        return success


class SlicerApplication:
    """``slicer.app``: a real scene with the module logics Slicer runs, plus the Qt-side behaviour listed above."""

    LOGICS = {"Data": "vtkSlicerDataModuleLogic", "Colors": "vtkSlicerColorLogic",
              "SubjectHierarchy": "vtkSlicerSubjectHierarchyModuleLogic", "Volumes": "vtkSlicerVolumesLogic",
              "Segmentations": "vtkSlicerSegmentationsModuleLogic", "Markups": "vtkSlicerMarkupsLogic",
              "Tables": "vtkSlicerTablesLogic", "Transforms": "vtkSlicerTransformLogic"}

    def __init__(self, temporaryPath):
        import slicer

        self.temporaryPath, self.applicationName = temporaryPath, "Slicer"
        self.connections, self.pipInstalls, self.sampleSources = [], [], []
        self.answers, self.messageBoxes = ctkMessageBox.answers, ctkMessageBox.shown
        self.answers.clear()
        self.messageBoxes.clear()
        self.mrmlScene = slicer.vtkMRMLScene()
        self.applicationLogic = slicer.vtkSlicerApplicationLogic()
        self.applicationLogic.SetMRMLScene(self.mrmlScene)
        self.logics = {}
        for module, className in self.LOGICS.items():
            logic = getattr(slicer, className)()
            logic.SetMRMLApplicationLogic(self.applicationLogic)
            logic.SetMRMLScene(self.mrmlScene)
            self.logics[module] = logic
        self.sliceLogics = []
        for name in ("Red", "Yellow", "Green"):  # the slice views of the default layout
            sliceLogic = slicer.vtkMRMLSliceLogic()
            sliceLogic.SetMRMLApplicationLogic(self.applicationLogic)
            sliceLogic.SetMRMLScene(self.mrmlScene)
            sliceLogic.AddSliceNode(name)
            self.sliceLogics.append(sliceLogic)
        self._ioManager = CoreIOManager(self)
        self.mrmlScene.AddObserver(slicer.vtkMRMLScene.NodeAddedEvent, self._onNodeAdded)
        self.mrmlScene.AddObserver(slicer.vtkMRMLScene.NodeAboutToBeRemovedEvent, self._onNodeAboutToBeRemoved)
        self.modules = types.SimpleNamespace(markups=types.SimpleNamespace(logic=lambda: self.logics["Markups"]))

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def _onNodeAdded(self, scene, event, node):
        if scene and node.IsA("vtkMRMLStorableNode") and not node.GetHideFromEditors() and not scene.IsImporting():
            shNode = scene.GetSubjectHierarchyNode()
            if not shNode.GetItemByDataNode(node):
                shNode.CreateItem(shNode.GetSceneItemID(), node)

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def _onNodeAboutToBeRemoved(self, scene, event, node):
        if scene and not scene.IsClosing() and not node.IsA("vtkMRMLSubjectHierarchyNode"):
            shNode = scene.GetSubjectHierarchyNode()
            item = shNode.GetItemByDataNode(node)
            if item:
                shNode.RemoveItem(item, False, False)

    def loadModule(self, path, moduleClass, widgetClass):
        """Instantiate a scripted module as Slicer's module manager does, and list it in ``slicer.modules``."""
        module = qSlicerScriptedLoadableModule(path, widgetClass)
        moduleClass(module)
        setattr(self.modules, module.name.lower(), module)
        return module

    def unloadModules(self):
        """As Slicer's module manager does on exit: each panel's ``cleanup()`` (moduleAboutToBeUnloaded)."""
        for module in vars(self.modules).values():
            if isinstance(module, qSlicerScriptedLoadableModule) and module._widget is not None:
                module._widget.self().cleanup()

    def moduleManager(self):
        return types.SimpleNamespace(
            module=lambda name: getattr(self.modules, name.lower(), None),
            connect=lambda signal, slot: None, disconnect=lambda signal, slot: None)

    def coreIOManager(self):
        return self._ioManager

    def connect(self, signal, slot):
        self.connections.append((signal, slot))

    def testingEnabled(self):
        return False

    def translate(self, context, text):
        return text  # no translation loaded: the source text

    def topLevelWidgets(self):
        return []

    def processEvents(self):
        now = time.monotonic()
        for timer in [timer for timer in QTimer.active if timer._due <= now]:
            timer._due = now + timer.interval / 1000
            timer.emit("timeout")


_application: SlicerApplication | None = None


def install(temporaryPath):
    """Put ``qt`` and ``ctk`` in place, import slicer-core and Slicer's Python (``../shared/slicer-python``) as
    ``slicer``, and give it a fresh application; returns ``slicer``."""
    global _application
    sys.modules.setdefault("qt", qt)
    sys.modules.setdefault("ctk", ctk)
    import slicer
    import slicer.util

    slicer.util = sys.modules["slicer.util"]  # slicer-core copies every attribute of parameterNodeWrapper onto
    #                                            `slicer`, its `util` submodule too; the real slicer.util is this
    packaging = types.ModuleType("slicer.packaging")  # Slicer's pip front end (runs pip in PythonSlicer)
    packaging.pip_install = lambda requirements, **kwargs: _application.pipInstalls.append(requirements)
    sys.modules["slicer.packaging"] = packaging
    sampleData = types.ModuleType("SampleData")  # the Sample Data module of Slicer's application
    sampleData.SampleDataLogic = types.SimpleNamespace(
        registerCustomSampleDataSource=lambda **source: _application.sampleSources.append(source))
    sys.modules["SampleData"] = sampleData
    QTimer.active.clear()
    QDialog.answer, QDialog.shown[:], QFileDialog.answers[:], QFileDialog.asked[:] = None, [], [], []
    _application = SlicerApplication(temporaryPath)
    slicer.app, slicer.mrmlScene, slicer.modules = _application, _application.mrmlScene, _application.modules
    return slicer
