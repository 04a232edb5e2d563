"""LesionDetect: AI lesion detection in CT and MRI, as a 3D Slicer module.

The path of one run (`LesionDetectLogic.process`):
input volume node → temporary NRRD written by Slicer's own volume writer (`slicer.util.exportNode`, no compression,
the node's storage is left untouched) → ``PythonSlicer -m LesionDetectLib detect … --progress jsonl`` in a separate
process (`LesionDetectProcess`) → ``<stem>.seg.nrrd``, ``.mrk.json``, ``.lesions.csv`` → nodes (`LesionDetectResults`).
torch and MONAI are never imported in Slicer's process: only the child process uses them.
"""

import enum
import importlib.util
import logging
import os
import pathlib
import shutil
import sys
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import LesionDetectResults
import qt
import slicer
from LesionDetectProcess import (
    CANCELLED_EXIT_CODE,
    ProgressEvent,
    SubprocessRunner,
    errorMessage,
    parseProgressLine,
)
from LesionDetectResults import DetectionNodes
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

MODULE_FOLDER = os.path.dirname(os.path.abspath(__file__))
LIBRARY = "LesionDetectLib"
INPUT_STEM = "volume"
# (sample name in Sample Data, file in LesionDetectLib/sample_data, node name)
SAMPLES = (
    ("LesionDetect MS FLAIR", "ms_flair.nrrd", "MSFLAIR"),
    ("LesionDetect sarcoma CT", "ct_sarcoma.nrrd", "SarcomaCT"),
)
STAGE_TITLES = {
    "read": "Reading the volume", "load_model": "Loading the model", "preprocess": "Preparing the image",
    "inference": "Running the model", "postprocess": "Measuring lesions", "write": "Writing results",
    "done": "Detection finished", "load": "Loading results", "error": "Failed",
}
PIP_REQUIREMENTS = {"monai": "monai>=1.4", "nrrd": "pynrrd>=1.0"}
"""Modules the library needs in PythonSlicer beyond what Slicer ships, with their pip requirement.
torch is installed separately, through the PyTorch extension."""


#
# Module
#


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
            "documentation. The sample data sets are a brain FLAIR MRI from the Ljubljana 3D MS lesion data set "
            "(Lesjak et al., Neuroinformatics 2017, doi:10.1007/s12021-017-9348-7, CC BY) and a soft-tissue "
            "sarcoma CT from the TCIA Soft-tissue-Sarcoma collection (Vallières et al. 2015, "
            "doi:10.7937/K9/TCIA.2015.7GO2GSKS, CC BY 3.0)."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


def libraryFolder() -> str | None:
    """Folder of the LesionDetectLib package: installed next to this module, or the source tree's (developers)."""
    sourceTreeParent = os.path.dirname(MODULE_FOLDER)
    spec = importlib.util.find_spec(LIBRARY)
    if spec is None and os.path.isfile(os.path.join(sourceTreeParent, LIBRARY, "__init__.py")):
        sys.path.append(sourceTreeParent)
        spec = importlib.util.find_spec(LIBRARY)
    return list(spec.submodule_search_locations)[0] if spec and spec.submodule_search_locations else None


def registerSampleData():
    """Add the sample volumes shipped with the library to the Sample Data module."""
    import SampleData

    folder = libraryFolder()
    for sampleName, fileName, nodeName in SAMPLES:
        samplePath = os.path.join(folder, "sample_data", fileName) if folder else None
        if not samplePath or not os.path.isfile(samplePath):
            continue
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category="LesionDetect",
            sampleName=sampleName,
            thumbnailFileName=os.path.join(MODULE_FOLDER, "Resources", "Icons", "LesionDetect.png"),
            uris=pathlib.Path(samplePath).as_uri(),
            fileNames=f"LesionDetect_{fileName}",
            nodeNames=nodeName,
            checksums=expectedChecksum(os.path.dirname(samplePath), fileName),
            loadFileType="VolumeFile",
        )


def expectedChecksum(folder: str, fileName: str) -> str | None:
    """``SHA256:<hex>`` for ``fileName`` from the ``SHA256SUMS`` file published with it, or None if it has none.

    The checksum is read, never computed here: computing it from the file it is meant to verify proves nothing.
    """
    try:
        with open(os.path.join(folder, "SHA256SUMS"), encoding="utf-8") as sums:
            for line in sums:
                parts = line.split()
                if len(parts) == 2 and parts[1].lstrip("*") == fileName and len(parts[0]) == 64:
                    return f"SHA256:{parts[0].lower()}"
    except OSError:
        pass
    return None


#
# Parameter node
#


class Device(enum.Enum):
    """Where the model runs; the value is the ``--device`` argument."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"

    def label(self) -> str:
        return {"auto": "Automatic (GPU if available)", "cpu": "CPU", "cuda": "GPU (CUDA)"}[self.value]


@parameterNodeWrapper
class LesionDetectParameterNode:
    """
    inputVolume - the volume to search for lesions.
    model - model name, "" for the library's default model for the volume's modality.
    threshold - probability above which a voxel is lesion (lower finds more, with more false positives).
    minimumLesionSizeMm3 - smaller lesions are dropped; 0 uses the model's default.
    device - where the model runs.
    show3D - show the lesions as surfaces in the 3-D view.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    model: str = ""
    threshold: Annotated[float, WithinRange(0.01, 0.99)] = 0.5
    minimumLesionSizeMm3: Annotated[float, WithinRange(0.0, 1.0e6)] = 0.0
    device: Device = Device.auto
    show3D: bool = False


#
# Widget
#


class LesionDetectWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._models: dict = {}
        self._results: DetectionNodes | None = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LesionDetect.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = LesionDetectLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onInputVolumeChanged)
        self.ui.show3DCheckBox.connect("toggled(bool)", self.onShow3DToggled)
        self.ui.resultsTable.connect("cellClicked(int,int)", self.onResultClicked)
        self.ui.progressBar.setVisible(False)

        self.populateModels()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self.logic and self.logic.isRunning:
            self.logic.cancel()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        if self.logic.isRunning:
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

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.selectModel(self._parameterNode.model)
            self.onInputVolumeChanged(self._parameterNode.inputVolume)

    # Models

    def populateModels(self) -> None:
        """Fill the model list: automatic choice first, then every installed model."""
        combo = self.ui.modelComboBox
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("Automatic (model for the volume's modality)", "")
        try:
            self._models = {model.name: model for model in self.logic.availableModels()}
        except Exception as error:  # a broken installation must not break the module panel
            logging.error(f"LesionDetect: cannot list models: {error}")
            self._models = {}
        for model in self._models.values():
            combo.addItem(f"{model.name} ({model.modality}, v{model.version})", model.name)
        combo.blockSignals(False)
        self.describeModel("")

    def selectModel(self, name: str) -> None:
        """Show the parameter node's model without resetting the threshold to that model's default."""
        combo = self.ui.modelComboBox
        for index in range(combo.count):
            if combo.itemData(index) == name:
                combo.blockSignals(True)
                combo.currentIndex = index
                combo.blockSignals(False)
                break
        self.describeModel(name)

    def onModelChanged(self, index: int) -> None:
        name = self.ui.modelComboBox.itemData(index) or ""
        self.describeModel(name)
        if self._parameterNode is None:
            return
        self._parameterNode.model = name
        defaultThreshold = self.logic.modelDefaultThreshold(self._models.get(name))
        if defaultThreshold is not None:
            self._parameterNode.threshold = defaultThreshold

    def describeModel(self, name: str) -> None:
        model = self._models.get(name)
        if model is None:
            text = "The library picks the installed model made for the volume's modality (CT or MR)."
            if not self._models:
                text = "No model is installed yet. " + text
        else:
            text = f"{model.description}\nModality: {model.modality}, version {model.version}."
        self.ui.modelDescriptionLabel.text = text

    # Running

    def onApplyButton(self) -> None:
        if self.logic.isRunning:
            self.logic.cancel()
            self.ui.statusLabel.text = "Cancelling…"
            return
        with slicer.util.tryWithErrorDisplay("LesionDetect failed unexpectedly.", waitCursor=False):
            try:
                self.startDetection()
            except DetectionError as error:
                self.ui.statusLabel.text = str(error).splitlines()[0]
                slicer.util.errorDisplay(str(error), windowTitle="LesionDetect")

    def startDetection(self) -> None:
        parameters = self._parameterNode
        self.logic.checkInputVolume(parameters.inputVolume)
        if not self.ensureDependencies():
            self.ui.statusLabel.text = "Not started: required Python packages are missing."
            return
        self.logic.process(
            parameters.inputVolume,
            model=parameters.model or None,
            threshold=parameters.threshold,
            minimumLesionSizeMm3=parameters.minimumLesionSizeMm3 or None,
            device=parameters.device.value,
            showIn3D=parameters.show3D,
            waitForCompletion=False,
            progressCallback=self.onProgress,
            completionCallback=self.onCompleted,
        )
        self.setRunning(self.logic.isRunning)

    def ensureDependencies(self) -> bool:
        """Offer to install missing packages (after confirmation); True when detection can run."""
        if not self.logic.missingDependencies():
            return True
        return self.logic.installDependencies(askConfirmation=True)

    def setRunning(self, running: bool) -> None:
        self.ui.applyButton.text = "Cancel" if running else "Detect lesions"
        self.ui.applyButton.toolTip = "Stop the detection; the scene is left as it was." if running else (
            "Find lesions in the input volume.")
        self.ui.progressBar.setVisible(running)
        self.ui.progressBar.value = 0
        for widget in (self.ui.inputVolumeSelector, self.ui.modelComboBox, self.ui.thresholdSliderWidget,
                       self.ui.minimumSizeSpinBox, self.ui.deviceComboBox):
            widget.enabled = not running

    def onProgress(self, event: ProgressEvent) -> None:
        self.ui.progressBar.value = int(round(100 * event.fraction))
        title = STAGE_TITLES.get(event.stage, event.stage)
        self.ui.statusLabel.text = f"{title}: {event.message}" if event.message else title

    def onCompleted(self, outcome: "RunOutcome") -> None:
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

    # Results

    def onInputVolumeChanged(self, volumeNode) -> None:
        self.ui.applyButton.enabled = volumeNode is not None or self.logic.isRunning
        if not self.logic.isRunning:
            self.showResults(LesionDetectResults.findResults(volumeNode))

    def showResults(self, nodes: DetectionNodes | None) -> None:
        self._results = nodes
        table = self.ui.resultsTable
        rows = LesionDetectResults.lesionRows(nodes.table) if nodes else []
        table.setRowCount(len(rows))
        for rowIndex, row in enumerate(rows):
            cells = (row["label"], f"{row['confidence_max']:.2f}", f"{row['volume_mm3']:.1f}",
                     f"{row['longest_axial_diameter_mm']:.1f}")
            for columnIndex, text in enumerate(cells):
                table.setItem(rowIndex, columnIndex, qt.QTableWidgetItem(text))
        if nodes is not None:
            self.ui.statusLabel.text = f"{len(rows)} lesion(s) found. Click a row to jump to the lesion."

    def onResultClicked(self, row: int, column: int) -> None:
        if self._results is None:
            return
        label = self.ui.resultsTable.item(row, 0).text()
        self.logic.jumpToLesion(self._results.points, label)

    def onShow3DToggled(self, show: bool) -> None:
        if self._results is not None:
            LesionDetectResults.setShowIn3D(self._results.segmentation, show)


#
# Logic
#


class DetectionError(RuntimeError):
    """A problem the user can act on; its message is shown as it is."""


class MissingDependenciesError(DetectionError):
    pass


class DetectionFailedError(DetectionError):
    pass


class DetectionCancelledError(DetectionError):
    pass


@dataclass
class RunOutcome:
    """How a run ended: result nodes (with the detection's warnings), an error message, or cancelled."""

    nodes: DetectionNodes | None = None
    error: str | None = None
    cancelled: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Run:
    """State of the run in progress."""

    volumeNode: object
    folder: str
    showIn3D: bool
    progressCallback: Callable[[ProgressEvent], None] | None
    completionCallback: Callable[[RunOutcome], None] | None
    cancelRequested: bool = False
    errorEvent: ProgressEvent | None = None
    warnings: list[str] = field(default_factory=list)
    stderrTail: deque = field(default_factory=lambda: deque(maxlen=40))
    outcome: RunOutcome | None = None

    def report(self, event: ProgressEvent) -> None:
        if self.progressCallback is not None:
            self.progressCallback(event)


class LesionDetectLogic(ScriptedLoadableModuleLogic):
    """Runs LesionDetectLib on volume nodes; usable without the GUI::

        logic = LesionDetectLogic()
        seg, points, table = logic.process(volumeNode, model="…", threshold=0.5, device="auto")

    ``processRunner`` starts the detection process (`SubprocessRunner` by default; tests pass a fake one).
    """

    def __init__(self, processRunner=None, pythonExecutable: str | None = None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.processRunner = processRunner or SubprocessRunner()
        self.pythonExecutable = pythonExecutable
        self.findModule = importlib.util.find_spec
        self._run: _Run | None = None

    def getParameterNode(self):
        return LesionDetectParameterNode(super().getParameterNode())

    @property
    def isRunning(self) -> bool:
        return self._run is not None

    # Library and dependencies

    def availableModels(self) -> list:
        """Installed models (records with name, version, modality, description), without importing torch."""
        if libraryFolder() is None:
            raise DetectionError(f"the {LIBRARY} package is missing from this installation")
        from LesionDetectLib.bundles import list_models

        return list_models()

    @staticmethod
    def modelDefaultThreshold(model) -> float | None:
        """The model's own default threshold (from its `bundles.ModelEntry`)."""
        return getattr(model, "threshold", None)

    def missingDependencies(self) -> list[str]:
        """Python modules the detection process needs that are not installed (checked without importing them)."""
        return [name for name in ("torch", *PIP_REQUIREMENTS) if self.findModule(name) is None]

    def installDependencies(self, askConfirmation: bool = True) -> bool:
        """Install what is missing: torch through the PyTorch extension, the rest with pip.

        Returns False if the user declined. No restart is needed afterwards: the packages are used only by the
        separate detection process, which starts fresh each run.
        """
        missing = self.missingDependencies()
        if not missing:
            return True
        listing = "\n".join(f"  • {'torch (through the PyTorch extension)' if name == 'torch' else PIP_REQUIREMENTS[name]}"
                            for name in missing)
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(
            "LesionDetect needs these Python packages, which are not installed yet:\n\n"
            f"{listing}\n\nInstall them now? The download can be large (PyTorch is 1–3 GB) and take several "
            "minutes. No restart is needed: detection runs them in a separate process.",
            windowTitle="LesionDetect: install dependencies",
        ):
            return False
        if "torch" in missing:
            try:
                import PyTorchUtils
            except ImportError:
                raise MissingDependenciesError(
                    "PyTorch is not installed and the PyTorch extension is missing. Install the 'PyTorch' extension "
                    "from the Extensions Manager, restart Slicer, and try again."
                ) from None
            # The user has just confirmed the whole list, so PyTorchUtils need not ask again.
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
                return False
        requirements = [PIP_REQUIREMENTS[name] for name in missing if name in PIP_REQUIREMENTS]
        if requirements:
            slicer.util.pip_install(" ".join(requirements))
        importlib.invalidate_caches()
        stillMissing = self.missingDependencies()
        if stillMissing:
            raise MissingDependenciesError(
                f"Installation finished but {', '.join(stillMissing)} still cannot be found. Restart Slicer and "
                "try again; if it persists, see the Troubleshooting section of the documentation."
            )
        return True

    # Running

    @staticmethod
    def checkInputVolume(volumeNode) -> None:
        """Raise `DetectionError` unless ``volumeNode`` is a 3-D single-component volume."""
        if volumeNode is None:
            raise DetectionError("Select an input volume first.")
        imageData = volumeNode.GetImageData()
        if imageData is None:
            raise DetectionError(f"The volume '{volumeNode.GetName()}' has no image data.")
        if imageData.GetNumberOfScalarComponents() != 1:
            raise DetectionError(f"The volume '{volumeNode.GetName()}' has several components per voxel (colour "
                                 "or vector image); LesionDetect needs a grayscale CT or MR volume.")
        dimensions = imageData.GetDimensions()
        if min(dimensions) < 2:
            raise DetectionError(f"The volume '{volumeNode.GetName()}' is a 2-D image ({dimensions[0]}×"
                                 f"{dimensions[1]}×{dimensions[2]} voxels); LesionDetect needs a 3-D volume.")

    def process(self, volumeNode, model: str | None = None, threshold: float | None = None,
                minimumLesionSizeMm3: float | None = None, device: str = "auto", showIn3D: bool = False,
                waitForCompletion: bool = True,
                progressCallback: Callable[[ProgressEvent], None] | None = None,
                completionCallback: Callable[[RunOutcome], None] | None = None) -> DetectionNodes | None:
        """Detect lesions in ``volumeNode``; returns ``(segmentation, points, table)`` nodes.

        ``model`` None uses the library's model for the volume's modality; ``threshold`` and
        ``minimumLesionSizeMm3`` None use the model's defaults; ``device`` is auto, cpu or cuda (``gpu`` = cuda).
        Earlier results for the same volume are replaced. With ``waitForCompletion=False`` the call returns None
        at once and ``completionCallback(RunOutcome)`` is called when the run ends; otherwise failures raise
        `DetectionFailedError` / `DetectionCancelledError`.
        """
        if self.isRunning:
            raise DetectionError("A lesion detection is already running; wait for it to finish or cancel it.")
        self.checkInputVolume(volumeNode)
        missing = self.missingDependencies()
        if missing:
            raise MissingDependenciesError(
                f"Missing Python packages: {', '.join(missing)}. Open the LesionDetect module and click "
                "'Detect lesions' to install them, or call LesionDetectLogic().installDependencies()."
            )
        deviceArgument = {"gpu": "cuda"}.get(str(device).lower(), str(device).lower())
        folder = tempfile.mkdtemp(prefix="LesionDetect-", dir=slicer.app.temporaryPath)
        run = _Run(volumeNode, folder, showIn3D, progressCallback, completionCallback)
        try:
            run.report(ProgressEvent("read", 0.0, "writing the volume for the detection process"))
            inputPath = os.path.join(folder, f"{INPUT_STEM}.nrrd")
            # exportNode writes through a temporary copy: the volume keeps its own storage node and file name.
            # world=False: the file holds the volume's own IJK→RAS; see LesionDetectResults for transforms.
            if not slicer.util.exportNode(volumeNode, inputPath, {"useCompression": 0}, world=False):
                raise DetectionError(f"Could not write the volume '{volumeNode.GetName()}' to {folder}.")
            command = self.detectCommand(inputPath, os.path.join(folder, "output"), model, threshold,
                                         minimumLesionSizeMm3, deviceArgument)
            self._run = run
            self.processRunner.start(command, self.processEnvironment(), self._onStdoutLine, self._onStderrLine,
                                     self._onFinished)
        except Exception:
            self._run = None
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if not waitForCompletion:
            return None
        self.processRunner.wait()
        if run.outcome.cancelled:
            raise DetectionCancelledError("Lesion detection was cancelled.")
        if run.outcome.error:
            raise DetectionFailedError(run.outcome.error)
        return run.outcome.nodes

    def cancel(self) -> None:
        """Stop the running detection; the scene is left as it was and temporary files are removed."""
        if self._run is not None and not self._run.cancelRequested:
            self._run.cancelRequested = True
            self.processRunner.cancel()

    def detectCommand(self, inputPath: str, outputFolder: str, model: str | None, threshold: float | None,
                      minimumLesionSizeMm3: float | None, device: str) -> list[str]:
        command = [self.pythonExecutableOrDefault(), "-m", LIBRARY, "detect", inputPath, "-o", outputFolder,
                   "--progress", "jsonl", "--quiet", "--device", device]
        if model:
            command += ["--model", model]
        if threshold is not None:
            command += ["--threshold", repr(float(threshold))]
        if minimumLesionSizeMm3 is not None:
            command += ["--min-size", repr(float(minimumLesionSizeMm3))]
        return command

    def pythonExecutableOrDefault(self) -> str:
        """``PythonSlicer``: Slicer's Python launcher, on PATH inside Slicer (as `slicer.util` finds it)."""
        executable = self.pythonExecutable or shutil.which("PythonSlicer")
        if not executable:
            raise DetectionError("PythonSlicer was not found next to Slicer; the installation may be incomplete.")
        return executable

    def processEnvironment(self) -> dict[str, str]:
        """Slicer's environment plus the folder holding LesionDetectLib (an extension's folder is not on
        PythonSlicer's default path) and UTF-8 output."""
        environment = dict(os.environ)
        folder = libraryFolder()
        if folder is None:
            raise DetectionError(f"The {LIBRARY} package is missing from this installation.")
        paths = [os.path.dirname(folder), *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
        environment["PYTHONPATH"] = os.pathsep.join(paths)
        environment["PYTHONIOENCODING"] = "utf-8"
        environment["PYTHONUNBUFFERED"] = "1"
        return environment

    def _onStdoutLine(self, line: str) -> None:
        event = parseProgressLine(line)
        if event is None:
            logging.info(f"LesionDetect: {line}")
            return
        if event.stage == "error":
            self._run.errorEvent = event
        elif event.stage == "warning":
            self._run.warnings.append(event.message)
            logging.warning(f"LesionDetect: {event.message}")
        else:
            self._run.report(event)

    def _onStderrLine(self, line: str) -> None:
        self._run.stderrTail.append(line)
        logging.info(f"LesionDetect: {line}")

    def _onFinished(self, exitCode: int) -> None:
        run, self._run = self._run, None
        try:
            if run.cancelRequested or exitCode == CANCELLED_EXIT_CODE:
                run.outcome = RunOutcome(cancelled=True)
            elif exitCode != 0:
                run.outcome = RunOutcome(error=errorMessage(run.errorEvent, list(run.stderrTail), exitCode))
            elif run.volumeNode.GetScene() is None:
                run.outcome = RunOutcome(error="The input volume was removed from the scene during the detection.")
            else:
                run.report(ProgressEvent("load", 1.0, "creating segmentation, points and table"))
                nodes = LesionDetectResults.loadResults(os.path.join(run.folder, "output"), INPUT_STEM,
                                                        run.volumeNode, run.showIn3D)
                run.outcome = RunOutcome(nodes=nodes, warnings=run.warnings)
        except Exception as error:
            logging.exception("LesionDetect: loading the results failed")
            run.outcome = RunOutcome(error=f"The results could not be loaded: {error}")
        finally:
            shutil.rmtree(run.folder, ignore_errors=True)
        if run.completionCallback is not None:
            run.completionCallback(run.outcome)

    # Results

    @staticmethod
    def jumpToLesion(pointsNode, label: str) -> None:
        """Centre the slice views on the control point labelled ``label`` (world position, transforms included)."""
        index = LesionDetectResults.controlPointIndex(pointsNode, label)
        if index >= 0:
            slicer.modules.markups.logic().JumpSlicesToNthPointInMarkup(pointsNode.GetID(), index, True)


#
# Self-test (runs inside Slicer: registered with slicer_add_python_unittest)
#


class LesionDetectTest(ScriptedLoadableModuleTest):
    """Geometry round trip through the real process runner, Slicer's writers/readers and the library's writers.

    Model weights are not needed: a stand-in command makes the lesion probability from the image intensity
    (bright = lesion) and writes the outputs with LesionDetectLib, in a PythonSlicer process like a real run.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LesionDetect_GeometryAndNodes()
        self.setUp()
        self.test_LesionDetect_InputErrors()

    def syntheticVolume(self):
        """A 40×30×20 volume, oblique IJK→RAS with anisotropic spacing, under a rotating parent transform,
        with one bright sphere centred at voxel (21, 12, 9)."""
        import numpy as np
        import vtk

        k, j, i = np.mgrid[0:20, 0:30, 0:40]
        voxels = np.full((20, 30, 40), 10, dtype=np.int16)
        voxels[(i - 21) ** 2 + (j - 12) ** 2 + ((k - 9) * 2.5) ** 2 <= 16] = 1000
        ijkToRas = np.array([[0, -0.8, 0, 30.0], [0.9, 0, 0, -12.0], [0, 0, 2.0, 55.0], [0, 0, 0, 1]])
        volumeNode = slicer.util.addVolumeFromArray(voxels, ijkToRas, name="Synthetic MR")
        transformNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        rotation = vtk.vtkTransform()
        rotation.RotateZ(30)
        rotation.Translate(5, -3, 2)
        transformNode.SetMatrixTransformToParent(rotation.GetMatrix())
        volumeNode.SetAndObserveTransformNodeID(transformNode.GetID())
        expectedWorld = rotation.GetMatrix().MultiplyPoint(list(ijkToRas @ np.array([21, 12, 9, 1.0])))[:3]
        return volumeNode, expectedWorld

    def test_LesionDetect_GeometryAndNodes(self):
        self.delayDisplay("Detecting a synthetic lesion")
        volumeNode, expectedWorld = self.syntheticVolume()
        logic = LesionDetectLogic(processRunner=_IntensityModelRunner())
        logic.findModule = lambda name: True  # the stand-in needs no torch/MONAI
        for _ in range(2):  # a second run must replace the first run's nodes
            seg, points, table = logic.process(volumeNode, threshold=0.5, waitForCompletion=True)
        self.assertEqual(seg.GetSegmentation().GetNumberOfSegments(), 1)
        self.assertEqual(points.GetNumberOfControlPoints(), 1)
        self.assertEqual(table.GetNumberOfRows(), 1)
        self.assertEqual(points.GetNthControlPointLabel(0), "L1")
        position = [0.0, 0.0, 0.0]
        points.GetNthControlPointPositionWorld(0, position)
        for actual, expected in zip(position, expectedWorld):
            self.assertAlmostEqual(actual, expected, places=3)
        self.assertEqual(seg.GetName(), "Synthetic MR lesions")
        self.assertEqual(seg.GetTransformNodeID(), volumeNode.GetTransformNodeID())
        self.assertEqual(len(slicer.util.getNodesByClass("vtkMRMLSegmentationNode")), 1)
        self.delayDisplay("Test passed")

    def test_LesionDetect_InputErrors(self):
        logic = LesionDetectLogic(processRunner=_IntensityModelRunner())
        with self.assertRaises(DetectionError):
            logic.process(None)
        import numpy as np

        flat = slicer.util.addVolumeFromArray(np.zeros((1, 8, 8), dtype=np.int16), name="flat")
        with self.assertRaises(DetectionError):
            logic.process(flat)
        self.delayDisplay("Test passed")


class _IntensityModelRunner(SubprocessRunner):
    """Runs, in a real PythonSlicer process, a stand-in for ``detect`` whose 'model' is the image intensity."""

    SCRIPT = (
        "import sys, numpy as np\n"
        "from LesionDetectLib.io import read_volume\n"
        "from LesionDetectLib.lesions import from_probability\n"
        "from LesionDetectLib.result import DetectionResult\n"
        "volume = read_volume(sys.argv[1])\n"
        "values = volume.array.astype(np.float32)\n"
        "probability = (values - values.min()) / max(float(np.ptp(values)), 1e-6)\n"
        "lesions, labels = from_probability(probability, volume, 0.5)\n"
        "DetectionResult(volume, lesions, labels, probability, 0.5, 'intensity').write(sys.argv[2], 'volume')\n"
    )

    def start(self, command, environment, onStdoutLine, onStderrLine, onFinished):
        inputPath, outputFolder = command[command.index("detect") + 1], command[command.index("-o") + 1]
        standIn = [command[0], "-c", self.SCRIPT, inputPath, outputFolder]
        super().start(standIn, environment, onStdoutLine, onStderrLine, onFinished)
