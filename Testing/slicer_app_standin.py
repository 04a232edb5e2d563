"""What real Slicer code cannot give a headless test: Qt (``qt``, ``ctk`` and the qMRML widget classes) and the
application object (``slicer.app``, ``slicer.modules``), kept to what the LesionDetect module and Slicer's own
Python (``slicer.util``, ``ScriptedLoadableModule``, ``parameterNodeWrapper``) call.

Everything else is real: the MRML scene, nodes, storage nodes and module logics of the ``slicer-core`` wheel, and
Slicer's ``slicer.util``, ``ScriptedLoadableModule`` and ``parameterNodeWrapper`` sources. Where the stand-in does
what Slicer's C++ Qt code does, it calls the same VTK logic:

- ``coreIOManager().loadNodes``: ``vtkSlicerSegmentationsModuleLogic.LoadSegmentationFromFile`` and
  ``vtkSlicerMarkupsLogic.LoadMarkups`` (qSlicerSegmentationsReader, qSlicerMarkupsReader);
- ``coreIOManager().exportNodes``: a temporary scene, ``CopyContent``, the node's default storage node and
  ``WriteData`` (qSlicerCoreIOManager::exportNodes, qSlicerNodeWriter::write);
- subject-hierarchy items for new data nodes, removed with them (qSlicerSubjectHierarchyPluginLogic);
- ``processEvents`` fires due ``QTimer``\\ s (the Qt event loop);
- message boxes answer from ``app.answers`` (ctkMessageBox.exec_); errors are only logged, as without a main window.

A Qt class that is named but not emulated here is a placeholder: using it raises, so no call passes unnoticed.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
import types
import xml.etree.ElementTree as ElementTree

import vtk

INJECTION_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slicer_injection")
"""Holds ``slicer/slicer_qt_standin.py``: slicer-core's ``slicer`` package imports every module of a ``slicer``
folder on ``sys.path`` (its documented extension point), so the qMRML classes below land in ``slicer``."""


#
# Qt objects and widgets
#


class Signal:
    def __init__(self):
        self.slots = []

    def connect(self, slot):
        self.slots.append(slot)

    def disconnect(self, slot):
        self.slots.remove(slot)


def _call(slot, args):
    """PythonQt passes a slot only as many signal arguments as it takes."""
    try:
        parameters = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return slot(*args)
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return slot(*args)
    return slot(*args[: sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)])


class QObject:
    SIGNALS: tuple[str, ...] = ()

    def __init__(self, parent=None):
        self.name, self._children, self._properties, self._blocked = "", [], {}, False
        self._signals = {name: Signal() for name in self.SIGNALS}
        if parent is not None:
            parent._children.append(self)

    def __getattr__(self, name):
        signals = self.__dict__.get("_signals", {})
        if name in signals:
            return signals[name]
        raise AttributeError(f"the Qt stand-in's {type(self).__name__} has no {name}")

    def connect(self, signature, slot):
        self._signals[signature.split("(")[0]].connect(slot)

    def emit(self, signal, *args):
        if not self._blocked:
            for slot in list(self._signals[signal].slots):
                _call(slot, args)

    def blockSignals(self, block):
        previous, self._blocked = self._blocked, bool(block)
        return previous

    def children(self):
        return list(self._children)

    def property(self, name):
        return self._properties.get(name)

    def setProperty(self, name, value):
        self._properties[name] = value


class QWidget(QObject):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.enabled, self.visible, self.toolTip, self.text = True, True, "", ""

    def isWidgetType(self):
        return True

    def setVisible(self, visible):
        self.visible = bool(visible)

    def layout(self):
        return self

    def addWidget(self, widget):
        self._children.append(widget)


class qMRMLWidget(QWidget):
    SIGNALS = ("mrmlSceneChanged",)

    def setMRMLScene(self, scene):
        self.emit("mrmlSceneChanged", scene)


class QLabel(QWidget):
    pass


class QProgressBar(QWidget):
    value = 0


class QPushButton(QWidget):
    SIGNALS = ("clicked",)

    def click(self):
        if self.enabled:
            self.emit("clicked", False)


class QCheckBox(QWidget):
    SIGNALS = ("toggled", "stateChanged")
    _checked = False

    @property
    def checked(self):
        return self._checked

    @checked.setter
    def checked(self, value):
        if bool(value) != self._checked:
            self._checked = bool(value)
            self.emit("toggled", self._checked)
            self.emit("stateChanged", 2 if self._checked else 0)


class QDoubleSpinBox(QWidget):
    """Also ctkSliderWidget: a clamped float value (Qt rounds it to ``decimals``)."""

    SIGNALS = ("valueChanged",)
    minimum, maximum, decimals, singleStep, _value = 0.0, 99.99, 2, 1.0, 0.0

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, value):
        value = round(min(self.maximum, max(self.minimum, float(value))), int(self.decimals))
        if value != self._value:
            self._value = value
            self.emit("valueChanged", value)


class ctkSliderWidget(QDoubleSpinBox):
    pass


class QComboBox(QWidget):
    SIGNALS = ("currentIndexChanged",)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._items, self._index = [], -1

    @property
    def count(self):
        return len(self._items)

    @property
    def currentIndex(self):
        return self._index

    @currentIndex.setter
    def currentIndex(self, index):
        if not -1 <= index < len(self._items):
            index = -1  # Qt ignores an index out of range by selecting nothing
        if index != self._index:
            self._index = index
            self.emit("currentIndexChanged", index)

    def addItem(self, text, userData=None):
        self._items.append((text, userData))
        if self._index == -1:
            self.currentIndex = 0

    def clear(self):
        self._items = []
        self.currentIndex = -1

    def itemText(self, index):
        return self._items[index][0] if 0 <= index < len(self._items) else ""

    def itemData(self, index):
        return self._items[index][1] if 0 <= index < len(self._items) else None

    def findData(self, data):
        return next((n for n, (_, itemData) in enumerate(self._items) if itemData == data), -1)


class qMRMLNodeComboBox(QWidget):
    SIGNALS = ("currentNodeChanged",)
    nodeTypes, scene, _node = (), None, None

    def setMRMLScene(self, scene):
        self.scene = scene

    def currentNode(self):
        return self._node

    def setCurrentNode(self, node):
        if node is not self._node:
            self._node = node
            self.emit("currentNodeChanged", node)


class QTableWidgetItem:
    def __init__(self, text=""):
        self._text = str(text)

    def text(self):
        return self._text


class QTableWidget(QWidget):
    SIGNALS = ("cellClicked",)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.columnCount, self._rows, self._cells = 0, 0, {}

    def rowCount(self):
        return self._rows

    def setRowCount(self, rows):
        self._rows = rows
        self._cells = {cell: item for cell, item in self._cells.items() if cell[0] < rows}

    def setItem(self, row, column, item):
        if 0 <= row < self._rows and 0 <= column < self.columnCount:
            self._cells[row, column] = item

    def item(self, row, column):
        return self._cells.get((row, column))


class QTimer(QObject):
    """Fires from `SlicerApplication.processEvents`, as Qt's event loop would."""

    SIGNALS = ("timeout",)
    active: list[QTimer] = []

    def __init__(self):
        super().__init__()
        self.interval, self._due = 0, 0.0

    def setInterval(self, milliseconds):
        self.interval = milliseconds

    def start(self):
        self._due = time.monotonic() + self.interval / 1000
        if self not in QTimer.active:
            QTimer.active.append(self)

    def stop(self):
        if self in QTimer.active:
            QTimer.active.remove(self)


class QSettings:
    def contains(self, key):
        return False


class ctkMessageBox(QWidget):
    def exec_(self):
        return _application.answers.pop(0)

    def deleteLater(self):
        _application.messageBoxes.append(self.text)


class QIcon:
    def __init__(self, path):
        self.path = path


class _Absent:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError(f"the Qt stand-in (Testing/slicer_app_standin.py) has no {type(self).__name__}")


class _QtModule(types.ModuleType):
    """A Qt namespace: its emulated classes, and a placeholder class for any other name (so that Slicer's Python,
    which names many widget classes in type checks and annotations, imports)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        placeholder = type(name, (_Absent,), {})
        setattr(self, name, placeholder)
        return placeholder


qt = _QtModule("qt")
for _class in (QObject, QWidget, QLabel, QProgressBar, QPushButton, QCheckBox, QDoubleSpinBox, QComboBox,
               QTableWidget, QTableWidgetItem, QTimer, QSettings, QIcon):
    setattr(qt, _class.__name__, _class)
qt.QMessageBox = types.SimpleNamespace(Ok=0x400, Cancel=0x400000, Information=1, Warning=2, Critical=3, Question=4)
qt.QApplication = types.SimpleNamespace(overrideCursor=lambda: None)
ctk = _QtModule("ctk")
ctk.ctkSliderWidget, ctk.ctkCollapsibleButton, ctk.ctkMessageBox = ctkSliderWidget, QWidget, ctkMessageBox


class QFile:
    ReadOnly = 1

    def __init__(self, path):
        self.path = path

    def exists(self):
        return os.path.isfile(self.path)

    def open(self, mode):
        return True


class QUiLoader:
    """Builds a Qt Designer file's widgets: classes, names, simple and dynamic properties, signal connections."""

    def load(self, qfile):
        root = ElementTree.parse(qfile.path).getroot()
        widgets = {}
        top = self._build(root.find("widget"), None, widgets)
        for connection in root.iter("connection"):
            sender, receiver = widgets[connection.findtext("sender")], widgets[connection.findtext("receiver")]
            sender.connect(connection.findtext("signal"), getattr(receiver, connection.findtext("slot").split("(")[0]))
        return top

    def _build(self, element, parent, widgets):
        className = element.get("class")
        widgetClass = vars(qt).get(className) or vars(ctk).get(className) or getattr(sys.modules["slicer"], className)
        widget = widgetClass(parent)
        widget.name = element.get("name")
        widgets[widget.name] = widget
        for prop in element.findall("property"):
            value = self._value(prop[0])
            if prop.get("stdset") == "0":
                widget.setProperty(prop.get("name"), value)
            elif value is not None and prop.get("name") != "orientation":
                setattr(widget, prop.get("name"), value)
        if isinstance(widget, QTableWidget):
            widget.columnCount = len(element.findall("column"))
        for child in element.iter("widget"):
            if child is not element and self._isDirectChild(element, child):
                self._build(child, widget, widgets)
        return widget

    def _isDirectChild(self, parent, child):
        return any(item is child or (item.tag in ("layout", "item") and self._isDirectChild(item, child))
                   for item in parent)

    @staticmethod
    def _value(node):
        converters = {"string": lambda n: n.text or "", "bool": lambda n: n.text == "true",
                      "number": lambda n: int(n.text), "double": lambda n: float(n.text),
                      "stringlist": lambda n: [item.text for item in n]}
        return converters[node.tag](node) if node.tag in converters else None


qt.QFile, qt.QUiLoader = QFile, QUiLoader


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
              "Tables": "vtkSlicerTablesLogic"}

    def __init__(self, temporaryPath):
        import slicer

        self.temporaryPath, self.applicationName = temporaryPath, "Slicer"
        self.answers, self.messageBoxes, self.connections, self.pipInstalls, self.sampleSources = [], [], [], [], []
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
    _application = SlicerApplication(temporaryPath)
    slicer.app, slicer.mrmlScene, slicer.modules = _application, _application.mrmlScene, _application.modules
    return slicer
