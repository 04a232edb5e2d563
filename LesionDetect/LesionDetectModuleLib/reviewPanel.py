"""The panel's review controls: previous / next (in order of confidence, centring the views), accept / reject,
the comment of the current lesion, adding a missed lesion by placing a point on it, the review summary, the
export of the reviewed set and of a DICOM Segmentation, and new measurements after a segment is edited; keyboard shortcuts N, P, A, R while the focus is in the module panel (so they never
take a key from the views or other modules)."""

from __future__ import annotations

import contextlib

import qt
import slicer

from LesionDetectLib.review import ACCEPTED, REJECTED, summary_text

from .errors import DetectionError
from .results import INPUT_VOLUME_ATTRIBUTE
from .resultsView import ResultsView

SHORTCUT_KEYS = {"N": "next", "P": "previous", "A": "accept", "R": "reject"}
MEASURE_DELAY_MS = 300


class ReviewPanel:
    """Wires ``ui``'s review widgets to ``logic`` for the lesions ``resultsView`` shows."""

    def __init__(self, ui, logic, resultsView: ResultsView, shortcutParent, detectionOptions) -> None:
        """``detectionOptions()`` gives the panel's current `DetectionOptions` (model, device…)."""
        self.ui, self.logic, self.results, self.detectionOptions = ui, logic, resultsView, detectionOptions
        self.currentLabel: str | None = None
        self.placedPoints = None  # the point list the reader places a missed lesion's point in
        self.observed = None  # (segmentation node, observer tag): edits of the shown segments are measured again
        self.measureTimer = qt.QTimer()  # an edit is a burst of modifications: measure once they stop
        self.measureTimer.setInterval(MEASURE_DELAY_MS)
        self.measureTimer.connect("timeout()", self.onSegmentsEdited)
        actions = {"next": lambda: self.step(1), "previous": lambda: self.step(-1),
                   "accept": lambda: self.setStatus(ACCEPTED), "reject": lambda: self.setStatus(REJECTED)}
        for action, button in (("previous", ui.previousLesionButton), ("next", ui.nextLesionButton),
                               ("accept", ui.acceptLesionButton), ("reject", ui.rejectLesionButton)):
            button.connect("clicked(bool)", actions[action])
        ui.commentLineEdit.connect("editingFinished()", self.onCommentEdited)
        ui.exportReviewButton.connect("clicked(bool)", self.onExport)
        ui.exportDicomSegButton.connect("clicked(bool)", self.onExportDicomSeg)
        ui.addLesionButton.connect("clicked(bool)", self.startAddingLesion)
        self.shortcuts = []
        for key, action in SHORTCUT_KEYS.items():
            shortcut = qt.QShortcut(shortcutParent)
            shortcut.setKey(qt.QKeySequence(key))
            shortcut.setContext(qt.Qt.WidgetWithChildrenShortcut)
            shortcut.connect("activated()", actions[action])
            self.shortcuts.append(shortcut)

    @contextlib.contextmanager
    def reportingErrors(self, what: str, onError=None):
        """A problem the user can act on (`DetectionError`) → the status line and a message box, not a traceback."""
        try:
            yield
        except DetectionError as error:
            if onError is not None:
                onError()
            self.ui.statusLabel.text = f"{what}."
            slicer.util.errorDisplay(f"{what}:\n\n{error}", windowTitle="LesionDetect")

    def cleanup(self) -> None:
        """Before the panel goes: shortcuts, observers and a pending point list removed."""
        self.measureTimer.stop()
        self.observeEdits(None)
        self.removePlacedPoints()
        self.removeShortcuts()

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
        self.ui.exportReviewButton.enabled = self.ui.exportDicomSegButton.enabled = nodes is not None
        self.ui.addLesionButton.enabled = nodes is not None and not self.logic.isRunning
        self.ui.commentLineEdit.text = (self.logic.lesionReview(self.volumeNode(), self.currentLabel)["comment"]
                                        if self.currentLabel else "")
        self.ui.reviewSummaryLabel.text = summary_text(self.logic.reviewSummary(self.volumeNode())) if nodes else ""
        self.results.selectLabel(self.currentLabel)
        self.observeEdits(nodes.segmentation if nodes else None)

    def observeEdits(self, segmentationNode) -> None:
        """Measure the lesions again when ``segmentationNode``'s segments are edited (and stop for the previous)."""
        if self.observed is not None and self.observed[0] is segmentationNode:
            return
        if self.observed is not None:
            self.observed[0].RemoveObserver(self.observed[1])
        self.observed = None if segmentationNode is None else (segmentationNode, segmentationNode.AddObserver(
            slicer.vtkSegmentation.SourceRepresentationModified, lambda caller, event: self.measureTimer.start()))

    def onSegmentsEdited(self) -> None:
        self.measureTimer.stop()
        if self.results.nodes is None or self.results.nodes.segmentation.GetScene() is None:
            return
        changed = self.logic.updateMeasurements(self.volumeNode())
        if changed:
            self.results.show(self.results.nodes)
            self.refresh()
            self.ui.statusLabel.text = f"Measured again after the edit: {', '.join(changed)}."

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

    def startAddingLesion(self) -> None:
        """Let the reader place one point (Slicer's place mode); `onPointPlaced` takes it from there."""
        self.removePlacedPoints()
        self.placedPoints = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "missed lesion")
        self.placedPoints.SetSaveWithScene(False)
        self.placedPoints.AddObserver(slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onPointPlaced)
        markupsLogic = slicer.modules.markups.logic()
        markupsLogic.SetActiveList(self.placedPoints)
        markupsLogic.StartPlaceMode(False)
        self.ui.statusLabel.text = "Click on the missed lesion in a slice view."

    def onPointPlaced(self, caller, event) -> None:
        """The placed point → `addLesionAt` in the detection process (the point list goes when the run ends)."""
        point = list(caller.GetNthControlPointPositionWorld(caller.GetNumberOfControlPoints() - 1))
        self.ui.addLesionButton.enabled = False
        self.ui.statusLabel.text = "Outlining the lesion at the point…"
        with self.reportingErrors("The lesion could not be added", onError=lambda: self.onLesionAdded(None)):
            self.logic.addLesionAt(self.volumeNode(), point, self.detectionOptions(), waitForCompletion=False,
                                   completionCallback=self.onLesionAdded)

    def onLesionAdded(self, outcome) -> None:
        self.removePlacedPoints()
        self.refresh()
        if outcome is None or outcome.cancelled:
            self.ui.statusLabel.text = "No lesion was added."
        elif outcome.error:
            self.ui.statusLabel.text = "Adding the lesion failed."
            slicer.util.errorDisplay(f"Adding the lesion failed:\n\n{outcome.error}", windowTitle="LesionDetect")
        elif outcome.addedLabel is None:
            self.ui.statusLabel.text = "Nothing lesion-like at that point; no lesion was added."
        else:
            self.results.show(outcome.nodes)
            self.select(outcome.addedLabel)
            self.ui.statusLabel.text = f"Added lesion {outcome.addedLabel} (accepted, added by the reader)."

    def removePlacedPoints(self) -> None:
        if self.placedPoints is not None and self.placedPoints.GetScene() is not None:
            slicer.mrmlScene.RemoveNode(self.placedPoints)
        self.placedPoints = None

    def onExport(self) -> None:
        folder = self.ui.exportDirectoryButton.directory
        with self.reportingErrors("The reviewed lesions were not exported"):
            self.logic.exportReviewedSet(self.volumeNode(), folder)
            self.ui.statusLabel.text = f"Reviewed set exported to {folder}."

    def onExportDicomSeg(self) -> None:
        """The accepted lesions as ``<volume>.seg.dcm`` in the export folder (see `LesionDetectLogic.exportDicomSeg`)."""
        from .review import fileStem

        volumeNode = self.volumeNode()
        folder = self.ui.exportDirectoryButton.directory
        with self.reportingErrors("The DICOM Segmentation was not written"):
            if not folder:
                raise DetectionError("Choose the folder to export to.")
            path = self.logic.exportDicomSeg(volumeNode, f"{folder}/{fileStem(volumeNode.GetName())}.seg.dcm")
            self.ui.statusLabel.text = (f"DICOM Segmentation of the accepted lesions written to {path}." if path
                                        else "No lesion is accepted, so no DICOM Segmentation was written.")
