"""The panel's model import: a LesionDetect model or a MONAI bundle, from a ``.zip`` or a folder, installed by the
library's ``models import`` in a separate process; when a MONAI bundle does not say which of its output labels are
lesions, the user checks them in a list and the import runs again with them."""

from __future__ import annotations

import os

import qt
import slicer

from .errors import DetectionError
from .modelImport import LesionLabelsNeeded


class ImportPanel:
    """Wires ``widget.ui``'s import buttons to ``widget.logic.importModel`` and refreshes the model list after."""

    def __init__(self, widget) -> None:
        self.widget, self.ui = widget, widget.ui
        self.ui.importModelFileButton.connect("clicked(bool)", self.onImportFile)
        self.ui.importModelFolderButton.connect("clicked(bool)", self.onImportFolder)

    def onImportFile(self) -> None:
        path = qt.QFileDialog.getOpenFileName(self.widget.parent, "Import a model (.zip)", "",
                                              "Model bundles (*.zip)")
        if path:
            self.importModel(path)

    def onImportFolder(self) -> None:
        path = qt.QFileDialog.getExistingDirectory(self.widget.parent, "Import a model folder")
        if path:
            self.importModel(path)

    def importModel(self, path: str, lesionLabels: list[int] | None = None) -> None:
        """Import ``path``; asks for the lesion labels when the bundle does not say them; the outcome goes to the
        status line (and a failure to a message box), and the model list shows the new model, chosen."""
        self.ui.statusLabel.text = f"Importing {os.path.basename(path)}…"
        try:
            message = self.widget.logic.importModel(path, lesionLabels)
        except LesionLabelsNeeded as asked:
            chosen = chooseLesionLabels(asked.choices, self.widget.parent)
            if chosen:
                self.importModel(path, chosen)
            else:
                self.ui.statusLabel.text = "Not imported: no lesion label was chosen."
            return
        except DetectionError as error:
            self.ui.statusLabel.text = "The model was not imported."
            slicer.util.errorDisplay(str(error), windowTitle="LesionDetect")
            return
        self.widget.models.populate()
        name = os.path.basename(message.removeprefix("imported into ").rstrip("/\\"))
        index = self.ui.modelComboBox.findData(name)
        if index >= 0:
            self.ui.modelComboBox.currentIndex = index
        self.ui.statusLabel.text = f"Model '{name}' imported."


def chooseLesionLabels(choices, parent=None) -> list[int]:
    """Ask which of ``choices`` ((label, name) pairs) are lesions, in a checkable list; [] when cancelled."""
    dialog = qt.QDialog(parent)
    dialog.setWindowTitle("LesionDetect: which labels are lesions?")
    layout = qt.QVBoxLayout(dialog)
    layout.addWidget(qt.QLabel("The model does not say which of its output labels are lesions.\n"
                               "Check those that are; each connected region of them becomes a lesion."))
    labels = qt.QListWidget()
    for label, name in choices:
        item = qt.QListWidgetItem(f"{label}: {name}")
        item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable)
        item.setCheckState(qt.Qt.Unchecked)
        labels.addItem(item)
    layout.addWidget(labels)
    buttons = qt.QDialogButtonBox(qt.QDialogButtonBox.Ok | qt.QDialogButtonBox.Cancel)
    buttons.connect("accepted()", dialog.accept)
    buttons.connect("rejected()", dialog.reject)
    layout.addWidget(buttons)
    if dialog.exec_() != qt.QDialog.Accepted:
        return []
    return [label for row, (label, _) in enumerate(choices) if labels.item(row).checkState() == qt.Qt.Checked]
