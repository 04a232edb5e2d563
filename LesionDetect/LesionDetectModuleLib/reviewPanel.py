"""The panel's review controls: previous / next (in order of confidence, centring the views), accept / reject,
the comment of the current lesion, the review summary and the export of the reviewed set; keyboard shortcuts
N, P, A, R while the focus is in the module panel (so they never take a key from the views or other modules)."""

from __future__ import annotations

import qt
import slicer

from LesionDetectLib.review import ACCEPTED, REJECTED, summary_text

from .results import INPUT_VOLUME_ATTRIBUTE
from .resultsView import ResultsView

SHORTCUT_KEYS = {"N": "next", "P": "previous", "A": "accept", "R": "reject"}


class ReviewPanel:
    """Wires ``ui``'s review widgets to ``logic`` for the lesions ``resultsView`` shows."""

    def __init__(self, ui, logic, resultsView: ResultsView, shortcutParent) -> None:
        self.ui, self.logic, self.results = ui, logic, resultsView
        self.currentLabel: str | None = None
        actions = {"next": lambda: self.step(1), "previous": lambda: self.step(-1),
                   "accept": lambda: self.setStatus(ACCEPTED), "reject": lambda: self.setStatus(REJECTED)}
        for action, button in (("previous", ui.previousLesionButton), ("next", ui.nextLesionButton),
                               ("accept", ui.acceptLesionButton), ("reject", ui.rejectLesionButton)):
            button.connect("clicked(bool)", actions[action])
        ui.commentLineEdit.connect("editingFinished()", self.onCommentEdited)
        ui.exportReviewButton.connect("clicked(bool)", self.onExport)
        self.shortcuts = []
        for key, action in SHORTCUT_KEYS.items():
            shortcut = qt.QShortcut(shortcutParent)
            shortcut.setKey(qt.QKeySequence(key))
            shortcut.setContext(qt.Qt.WidgetWithChildrenShortcut)
            shortcut.connect("activated()", actions[action])
            self.shortcuts.append(shortcut)

    def removeShortcuts(self) -> None:
        for shortcut in self.shortcuts:
            shortcut.disconnect("activated()")
            shortcut.setParent(None)
        self.shortcuts = []

    def volumeNode(self):
        nodes = self.results.nodes
        return slicer.mrmlScene.GetNodeByID(nodes.table.GetAttribute(INPUT_VOLUME_ATTRIBUTE)) if nodes else None

    def refresh(self) -> None:
        """Follow the results shown: enable the controls, show the current lesion's comment and the summary."""
        nodes = self.results.nodes
        hasLesions = nodes is not None and nodes.table.GetNumberOfRows() > 0
        if not hasLesions or self.currentLabel not in self.logic.reviewOrder(self.volumeNode()):
            self.currentLabel = None
        for button in (self.ui.previousLesionButton, self.ui.nextLesionButton):
            button.enabled = hasLesions
        for widget in (self.ui.acceptLesionButton, self.ui.rejectLesionButton, self.ui.commentLineEdit):
            widget.enabled = self.currentLabel is not None
        self.ui.exportReviewButton.enabled = nodes is not None
        self.ui.commentLineEdit.text = (self.logic.lesionReview(self.volumeNode(), self.currentLabel)["comment"]
                                        if self.currentLabel else "")
        self.ui.reviewSummaryLabel.text = summary_text(self.logic.reviewSummary(self.volumeNode())) if nodes else ""
        self.results.selectLabel(self.currentLabel)

    def select(self, label: str | None) -> None:
        """Make ``label`` the current lesion and centre the views on it."""
        self.currentLabel = label
        if label is not None:
            self.logic.jumpToLesion(self.results.nodes.points, label)
        self.refresh()

    def step(self, step: int) -> None:
        if self.results.nodes is not None:
            self.select(self.logic.stepLesion(self.volumeNode(), self.currentLabel, step))

    def setStatus(self, status: str) -> None:
        """Set the current lesion's status, then go on to the next lesion."""
        if self.currentLabel is None:
            return
        self.logic.setLesionStatus(self.volumeNode(), self.currentLabel, status)
        self.results.show(self.results.nodes)
        self.step(1)

    def onCommentEdited(self) -> None:
        if self.currentLabel is not None:
            self.logic.setLesionComment(self.volumeNode(), self.currentLabel, self.ui.commentLineEdit.text)

    def onExport(self) -> None:
        folder = self.ui.exportDirectoryButton.directory
        with slicer.util.tryWithErrorDisplay("The reviewed lesions were not exported.", waitCursor=False):
            self.logic.exportReviewedSet(self.volumeNode(), folder)
            self.ui.statusLabel.text = f"Reviewed set exported to {folder}."
