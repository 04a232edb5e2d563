"""Qt for headless tests of the LesionDetect module: the ``qt`` and ``ctk`` modules and the qMRML widget classes,
kept to what the module and Slicer's own Python (``slicer.util``, ``ScriptedLoadableModule``,
``parameterNodeWrapper``) call. Widgets hold their properties, emit their signals when those change, and
``QUiLoader`` builds them from a Qt Designer file with its signal connections. ``QTimer``\\ s fire from
``slicer.app.processEvents()`` (`slicer_app_standin`), as from Qt's event loop. Message boxes answer from
``ctkMessageBox.answers``.

A Qt class that is named but not emulated here is a placeholder: using it raises, so no call passes unnoticed.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
import types
import xml.etree.ElementTree as ElementTree

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

    def disconnect(self, signature, slot=None):
        """PythonQt: one slot, or every slot of the signal when none is given."""
        signal = self._signals[signature.split("(")[0]]
        if slot is None:
            signal.slots.clear()
        else:
            signal.disconnect(slot)

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


class Notifying:
    """A widget property whose change emits ``signals`` with the new value, as Qt's property setters do."""

    def __init__(self, default, *signals, convert=lambda widget, value: value):
        self.default, self.signals, self.convert = default, signals, convert

    def __set_name__(self, owner, name):
        self.name = f"_{name}"

    def __get__(self, widget, owner=None):
        return self if widget is None else widget.__dict__.get(self.name, self.default)

    def __set__(self, widget, value):
        value = self.convert(widget, value)
        if value != self.__get__(widget):
            widget.__dict__[self.name] = value
            for signal in self.signals:
                widget.emit(signal, value)


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

    def addRow(self, labelText, field):
        """QFormLayout::addRow(const QString&, QWidget*): the rows are (label text, field) pairs."""
        self.__dict__.setdefault("formRows", []).append((labelText, field))
        self._children.append(field)

    def rowCount(self):
        return len(self.__dict__.get("formRows", []))

    def removeRow(self, row):
        """QFormLayout::removeRow: the row's widgets are deleted."""
        _, field = self.formRows.pop(row)
        self._children.remove(field)


class qMRMLWidget(QWidget):
    SIGNALS = ("mrmlSceneChanged",)

    def setMRMLScene(self, scene):
        self.emit("mrmlSceneChanged", scene)


class QLabel(QWidget):
    def __init__(self, text="", parent=None):
        """QLabel(parent) or QLabel(text, parent), as in Qt."""
        if not isinstance(text, str):
            text, parent = "", text
        super().__init__(parent)
        self.text = text


class QProgressBar(QWidget):
    value = 0


class QPushButton(QWidget):
    SIGNALS = ("clicked",)

    def click(self):
        if self.enabled:
            self.emit("clicked", False)


class QCheckBox(QWidget):
    SIGNALS = ("toggled", "stateChanged")
    checked = Notifying(False, "toggled", "stateChanged", convert=lambda widget, value: bool(value))


class QDoubleSpinBox(QWidget):
    """Also ctkSliderWidget: a float clamped to [minimum, maximum] and rounded to ``decimals``, as in Qt."""

    SIGNALS = ("valueChanged",)
    minimum, maximum, decimals, singleStep = 0.0, 99.99, 2, 1.0
    value = Notifying(0.0, "valueChanged", convert=lambda widget, value: round(
        min(widget.maximum, max(widget.minimum, float(value))), int(widget.decimals)))


class ctkSliderWidget(QDoubleSpinBox):
    pass


class QComboBox(QWidget):
    SIGNALS = ("currentIndexChanged",)
    currentIndex = Notifying(-1, "currentIndexChanged",  # an index out of range selects nothing, as in Qt
                             convert=lambda widget, index: index if -1 <= index < len(widget._items) else -1)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._items = []

    @property
    def count(self):
        return len(self._items)

    def addItem(self, text, userData=None):
        self._items.append((text, userData))
        if self.currentIndex == -1:
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


class QLineEdit(QWidget):
    SIGNALS = ("editingFinished", "textChanged")
    placeholderText = ""
    text = Notifying("", "textChanged", convert=lambda widget, value: str(value))

    def finishEditing(self):
        """What the user's Enter (or leaving the field) does."""
        self.emit("editingFinished")


class ctkDirectoryButton(QWidget):
    SIGNALS = ("directoryChanged",)
    directory = Notifying("", "directoryChanged", convert=lambda widget, value: str(value))


class QKeySequence:
    def __init__(self, text):
        self.text = str(text)

    def toString(self):
        return self.text


class QShortcut(QObject):
    """A shortcut of ``parent``'s window; ``press(key)`` on the parent triggers those with that key."""

    SIGNALS = ("activated",)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.key, self.context, self.enabled = None, None, True

    def setKey(self, key):
        self.key = key

    def setContext(self, context):
        self.context = context

    def setParent(self, parent):
        if parent is None:
            self.enabled = False


def press(widget, key):
    """Press ``key`` with the focus in ``widget``: every enabled shortcut of ``widget`` with that key fires."""
    for child in widget.children():
        if isinstance(child, QShortcut) and child.enabled and child.key.toString() == key:
            child.emit("activated")


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

    def selectRow(self, row):
        if 0 <= row < self._rows:
            self._selected = row

    def clearSelection(self):
        self._selected = -1

    def currentRow(self):
        return getattr(self, "_selected", -1)


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
    """Answers with the next of ``answers``; ``shown`` collects the texts."""

    answers: list[int] = []
    shown: list[str] = []

    def exec_(self):
        ctkMessageBox.shown.append(self.text)
        return ctkMessageBox.answers.pop(0)

    def deleteLater(self):
        pass


class QDialog(QWidget):
    """``exec_()`` hands the dialog to ``QDialog.answer`` (a test's function) and returns what it returns."""

    Rejected, Accepted = 0, 1
    answer = None
    shown: list[QDialog] = []

    def setWindowTitle(self, title):
        self.windowTitle = title

    def accept(self):
        self.result = QDialog.Accepted

    def reject(self):
        self.result = QDialog.Rejected

    def exec_(self):
        QDialog.shown.append(self)
        return QDialog.answer(self)


class QVBoxLayout(QObject):
    def __init__(self, parent=None):
        super().__init__()
        self.parent = parent

    def addWidget(self, widget):
        self.parent._children.append(widget)


class QListWidgetItem:
    def __init__(self, text=""):
        self._text, self._flags, self._checkState = str(text), 0, None

    def text(self):
        return self._text

    def flags(self):
        return self._flags

    def setFlags(self, flags):
        self._flags = flags

    def checkState(self):
        return self._checkState

    def setCheckState(self, state):
        if not self._flags & qt.Qt.ItemIsUserCheckable:
            raise AssertionError("the item is not checkable")
        self._checkState = state


class QListWidget(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._items = []

    def addItem(self, item):
        self._items.append(item)

    def item(self, row):
        return self._items[row] if 0 <= row < len(self._items) else None

    @property
    def count(self):
        return len(self._items)


class QDialogButtonBox(QWidget):
    SIGNALS = ("accepted", "rejected")
    Ok, Cancel = 0x400, 0x400000

    def __init__(self, buttons=0, parent=None):
        super().__init__(parent)
        self.standardButtons = buttons


class QFileDialog:
    """The static file choosers answer with the next of ``answers`` ("" as the user's Cancel)."""

    answers: list[str] = []
    asked: list[tuple] = []

    @staticmethod
    def getOpenFileName(parent=None, caption="", directory="", filter=""):
        QFileDialog.asked.append(("file", caption, filter))
        return QFileDialog.answers.pop(0)

    @staticmethod
    def getExistingDirectory(parent=None, caption="", directory=""):
        QFileDialog.asked.append(("folder", caption))
        return QFileDialog.answers.pop(0)


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
               QTableWidget, QTableWidgetItem, QTimer, QSettings, QIcon, QLineEdit, QKeySequence, QShortcut,
               QDialog, QVBoxLayout, QListWidget, QListWidgetItem, QDialogButtonBox, QFileDialog):
    setattr(qt, _class.__name__, _class)
qt.QMessageBox = types.SimpleNamespace(Ok=0x400, Cancel=0x400000, Information=1, Warning=2, Critical=3, Question=4)
qt.QApplication = types.SimpleNamespace(overrideCursor=lambda: None)
qt.Qt = types.SimpleNamespace(WidgetWithChildrenShortcut=2, ItemIsUserCheckable=0x10, Unchecked=0, Checked=2)
ctk = _QtModule("ctk")
ctk.ctkSliderWidget, ctk.ctkCollapsibleButton, ctk.ctkMessageBox = ctkSliderWidget, QWidget, ctkMessageBox
ctk.ctkDirectoryButton = ctkDirectoryButton


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
