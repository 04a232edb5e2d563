"""The panel's *Compare with prior* controls: the prior scan selector, the button that starts the comparison
(`LesionDetectLogic.compareWithPrior`) and the summary of the changes since the prior scan."""

from __future__ import annotations

import slicer

from .comparison import changeSummary, summaryText


class ComparePanel:
    """Wires ``widget.ui``'s compare controls to ``widget.logic``; runs start and end through the widget's own
    `startRun` and `onCompleted`, so progress, cancelling and the results table are those of a detection."""

    def __init__(self, widget) -> None:
        self.widget, self.ui = widget, widget.ui
        self.ui.compareButton.connect("clicked(bool)", self.onCompare)
        self.ui.priorVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", lambda node: self.refresh())

    def refresh(self) -> None:
        """Enable the button when both scans are chosen and nothing runs; show the shown results' change summary."""
        chosen = (self.ui.inputVolumeSelector.currentNode(), self.ui.priorVolumeSelector.currentNode())
        self.ui.compareButton.enabled = None not in chosen and not self.widget.logic.isRunning
        nodes = self.widget.results.nodes
        summary = changeSummary(nodes.table) if nodes is not None else None
        self.ui.changeSummaryLabel.text = summaryText(summary) if summary else ""

    def onCompare(self) -> None:
        parameters, logic = self.widget._parameterNode, self.widget.logic
        self.widget.startRun(lambda: logic.compareWithPrior(
            parameters.inputVolume, parameters.priorVolume, parameters.detectionOptions(), waitForCompletion=False,
            progressCallback=self.widget.onProgress, completionCallback=self.onCompleted))
        self.refresh()

    def onCompleted(self, outcome) -> None:
        """A refusal is the comparison's answer, not a failure: said as such; anything else as for a detection."""
        if not outcome.refused:
            self.widget.onCompleted(outcome)
            return
        self.widget.setRunning(False)
        self.refresh()
        self.ui.statusLabel.text = "Not compared: the comparison refused these scans; nothing was changed."
        slicer.util.errorDisplay(f"The prior scan was not compared with the input volume, and nothing in the scene "
                                 f"was changed:\n\n{outcome.error}", windowTitle="LesionDetect")
