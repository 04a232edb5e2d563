"""LesionDetect: AI lesion detection in CT and MRI, as a 3D Slicer module. This file holds the module, the panel's
wiring and the self-test entry; the small files of `LesionDetectModuleLib` do the work (its Sample Data too)."""

import slicer
from LesionDetectModuleLib.channelPanel import ChannelPanel
from LesionDetectModuleLib.comparePanel import ComparePanel
from LesionDetectModuleLib.errors import DetectionError
from LesionDetectModuleLib.importPanel import ImportPanel
from LesionDetectModuleLib.logic import LesionDetectLogic, RunOutcome
from LesionDetectModuleLib.modelChoice import ModelChoice
from LesionDetectModuleLib.protocol import STAGE_TITLES, ProgressEvent
from LesionDetectModuleLib.results import findResults, setShowIn3D
from LesionDetectModuleLib.resultsView import ResultsView
from LesionDetectModuleLib.reviewPanel import ReviewPanel
from LesionDetectModuleLib.sampleData import registerSampleData
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

__all__ = ["LesionDetect", "LesionDetectLogic", "LesionDetectTest", "LesionDetectWidget", "registerSampleData"]

class LesionDetect(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "LesionDetect"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["LesionDetect contributors"]
        self.parent.helpText = (
            "Detects lesions in a CT or MRI volume with a deep-learning model and shows them as a segmentation "
            "(one segment per lesion), a point list at the lesion centres and a table of measurements. "
            "Click a table row to centre the slice views on that lesion. Inference runs in a separate process, "
            "so Slicer stays responsive and a run can be cancelled.<br>"
            "For research use only, not for clinical diagnosis. See the "
            '<a href="https://github.com/lesiondetect/SlicerLesionDetect#readme">documentation</a>.'
        )
        self.parent.acknowledgementText = (
            "Developed by the LesionDetect contributors with MONAI, PyTorch, SimpleITK and 3D Slicer. "
            "The models are trained on public data sets credited in each model's description and in the "
            "documentation. The sample data sets are a brain FLAIR and T1 MRI from the Ljubljana 3D MS lesion data "
            "set (Lesjak et al., Neuroinformatics 2017, doi:10.1007/s12021-017-9348-7, CC BY) and a soft-tissue "
            "sarcoma CT from the TCIA Soft-tissue-Sarcoma collection (Vallières et al. 2015, "
            "doi:10.7937/K9/TCIA.2015.7GO2GSKS, CC BY 3.0)."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


class LesionDetectWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Wires the panel (Resources/UI/LesionDetect.ui) to the logic, the model list and the results table."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self._parameterNode = self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LesionDetect.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = LesionDetectLogic()
        self.models = ModelChoice(self.ui.modelComboBox, self.ui.modelDescriptionLabel, self.logic.availableModels)
        self.results = ResultsView(self.ui.resultsTable)
        self.review = ReviewPanel(self.ui, self.logic, self.results, self.parent,
                                  lambda: self._parameterNode.detectionOptions())
        self.compare, self.channels, self.imports = ComparePanel(self), ChannelPanel(self), ImportPanel(self)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onInputVolumeChanged)
        self.ui.show3DCheckBox.connect("toggled(bool)", self.onShow3DToggled)
        self.ui.resultsTable.connect("cellClicked(int,int)", self.onResultClicked)
        self.ui.progressBar.setVisible(False)
        self.models.populate()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.logic.cancel()
        self.review.cleanup()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self.logic.cancel()
        self.setParameterNode(None)
        self.showResults(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = parameterNode
        if parameterNode:
            self._parameterNodeGuiTag = parameterNode.connectGui(self.ui)
            self.models.select(parameterNode.model)
            self.onInputVolumeChanged(parameterNode.inputVolume)

    def onModelChanged(self, index: int) -> None:
        name = self.models.nameAt(index)
        self.models.describe(name)
        if self._parameterNode is not None:
            self._parameterNode.model = name
            threshold = self.models.defaultThreshold(name)
            if threshold is not None:
                self._parameterNode.threshold = threshold

    def onApplyButton(self) -> None:
        if self.logic.isRunning:
            self.logic.cancel()
            self.ui.statusLabel.text = "Cancelling…"
            return
        parameters = self._parameterNode
        self.startRun(lambda: self.logic.process(
            parameters.inputVolume, parameters.detectionOptions(), channelVolumes=self.channels.volumes(),
            waitForCompletion=False, progressCallback=self.onProgress, completionCallback=self.onCompleted))

    def startRun(self, start) -> None:
        """``start()`` a run once the input is usable and the packages are there; problems go to the user."""
        with slicer.util.tryWithErrorDisplay("LesionDetect failed unexpectedly.", waitCursor=False):
            try:
                self.logic.checkInputVolume(self._parameterNode.inputVolume)
                if not self.logic.installDependencies(askConfirmation=True):
                    self.ui.statusLabel.text = "Not started: required Python packages are missing."
                    return
                start()
            except DetectionError as error:
                self.ui.statusLabel.text = str(error).splitlines()[0]
                slicer.util.errorDisplay(str(error), windowTitle="LesionDetect")
            self.setRunning(self.logic.isRunning)

    def setRunning(self, running: bool) -> None:
        self.ui.applyButton.text = "Cancel" if running else "Detect lesions"
        self.ui.applyButton.toolTip = ("Stop the detection; the scene is left as it was." if running
                                       else "Find lesions in the input volume.")
        self.ui.progressBar.setVisible(running)
        self.ui.progressBar.value = 0
        for widget in (self.ui.inputVolumeSelector, self.ui.modelComboBox, self.ui.thresholdSliderWidget,
                       self.ui.minimumSizeSpinBox, self.ui.deviceComboBox, self.ui.priorVolumeSelector,
                       self.ui.channelsWidget, self.ui.importModelWidget):
            widget.enabled = not running
        self.compare.refresh()

    def onProgress(self, event: ProgressEvent) -> None:
        self.ui.progressBar.value = int(round(100 * event.fraction))
        title = STAGE_TITLES.get(event.stage, event.stage)
        self.ui.statusLabel.text = f"{title}: {event.message}" if event.message else title

    def onCompleted(self, outcome: RunOutcome) -> None:
        self.setRunning(False)
        if outcome.cancelled:
            self.ui.statusLabel.text = "Cancelled; the scene was left as it was."
        elif outcome.error:
            self.ui.statusLabel.text = "Lesion detection failed."
            slicer.util.errorDisplay(f"Lesion detection failed:\n\n{outcome.error}", windowTitle="LesionDetect")
        else:
            self.showResults(outcome.nodes)
            if outcome.warnings:
                self.ui.statusLabel.text += " Check the warning."
                slicer.util.warningDisplay("\n\n".join(outcome.warnings), windowTitle="LesionDetect")

    def onInputVolumeChanged(self, volumeNode) -> None:
        self.ui.applyButton.enabled = volumeNode is not None or self.logic.isRunning
        if not self.logic.isRunning:
            self.showResults(findResults(volumeNode))

    def showResults(self, nodes) -> None:
        count = self.results.show(nodes)
        self.review.refresh()
        self.compare.refresh()
        if nodes is not None:
            self.ui.statusLabel.text = f"{count} lesion(s) found. Click a row to jump to the lesion."

    def onResultClicked(self, row: int, column: int) -> None:
        if self.results.nodes is not None:
            self.review.select(self.results.labelAt(row))

    def onShow3DToggled(self, show: bool) -> None:
        if self.results.nodes is not None:
            setShowIn3D(self.results.nodes.segmentation, show)


class LesionDetectTest(ScriptedLoadableModuleTest):
    """Reload & Test: the logic tests of `LesionDetectModuleLib.logicTests` (and `.compareTests`) in Slicer, with a
    stand-in model (intensity) run by the real process runner in a real PythonSlicer process."""

    def runTest(self):
        import unittest

        from LesionDetectModuleLib.logicTests import slicerSelfTestSuite

        result = unittest.TextTestRunner(verbosity=2).run(slicerSelfTestSuite())
        self.assertTrue(result.wasSuccessful(), f"{len(result.failures) + len(result.errors)} of {result.testsRun} "
                        "LesionDetect logic tests failed; the Python console lists them")
