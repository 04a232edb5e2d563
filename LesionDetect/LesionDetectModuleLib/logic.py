"""`LesionDetectLogic`: detection on volume nodes, from the panel or the Python console.

One run: input volume node → temporary NRRD written by Slicer's own volume writer (`slicer.util.exportNode`, no
compression, the node's storage is left untouched) → ``PythonSlicer -m LesionDetectLib detect … --progress jsonl``
through the injected `ProcessRunner` → ``<stem>.seg.nrrd``, ``.mrk.json``, ``.lesions.csv`` → nodes (`results`).
A follow-up (`compareWithPrior`) runs ``compare PRIOR CURRENT`` the same way and loads its files (`comparison`).
torch and MONAI are never imported in Slicer's process: only the child process uses them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import slicer
import vtk
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from LesionDetectLib.review import ACCEPTED

from . import addedLesion, comparison, dependencies, library, measurements, modelImport, results, review
from .comparison import ComparisonNodes
from .errors import (
    ComparisonRefusedError,
    DetectionCancelledError,
    DetectionError,
    DetectionFailedError,
    MissingDependenciesError,
)
from .modelList import ModelRecord, parseModelList
from .parameters import DetectionOptions, LesionDetectParameterNode
from .protocol import CANCELLED_EXIT_CODE, REFUSED_EXIT_CODE, ProgressEvent, errorMessage, parseProgressLine
from .results import DetectionNodes
from .runner import ProcessRunner, SubprocessRunner

INPUT_STEM = "volume"
OUTPUT_FOLDER = "output"
"""The run's outputs go into this folder of its temporary folder."""
VOLUME_FILE_FORMAT = "NRRD (.nrrd)"
"""The format string of Slicer's volume storage node for ``.nrrd`` (as `slicer.util.exportNode` would find it)."""


@dataclass
class RunOutcome:
    """How a run ended: result nodes (with the detection's warnings), an error message (``refused``: the comparison
    refused the scans), or cancelled; for `addLesionAt`, the added lesion's label (None: nothing lesion-like there);
    for `compareWithPrior`, what the comparison put into the scene."""

    nodes: DetectionNodes | None = None
    error: str | None = None
    cancelled: bool = False
    warnings: list[str] = field(default_factory=list)
    addedLabel: str | None = None
    refused: bool = False
    comparison: ComparisonNodes | None = None


ProgressCallback = Callable[[ProgressEvent], None]
CompletionCallback = Callable[[RunOutcome], None]


@dataclass
class _Run:
    """State of the run in progress."""

    volumeNode: object
    folder: str
    load: Callable[[str], RunOutcome]  # output folder → the outcome of a successful run
    progressCallback: ProgressCallback | None
    completionCallback: CompletionCallback | None
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

    ``processRunner`` runs the detection command (`SubprocessRunner` by default), ``findModule`` tells which Python
    packages are installed (`importlib.util.find_spec` by default), ``pythonExecutable`` overrides ``PythonSlicer``.
    """

    def __init__(self, processRunner: ProcessRunner | None = None, findModule: library.ModuleFinder | None = None,
                 pythonExecutable: str | None = None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.processRunner = processRunner or SubprocessRunner()
        self.findModule = findModule or importlib.util.find_spec
        self.pythonExecutable = pythonExecutable
        self._run: _Run | None = None

    def getParameterNode(self) -> LesionDetectParameterNode:
        return LesionDetectParameterNode(super().getParameterNode())

    @property
    def isRunning(self) -> bool:
        return self._run is not None

    def availableModels(self) -> list[ModelRecord]:
        """Installed models (name, version, modality, description, threshold, input channels), as the library's
        ``models list --json`` gives them in the detection process's Python (never torch in Slicer's process)."""
        exitCode, output, message = self.runLibrary(["models", "list", "--json"])
        if exitCode != 0:
            raise DetectionError(f"The installed models could not be listed: {message}")
        return parseModelList(output)

    def importModel(self, path: str, lesionLabels: list[int] | None = None) -> str:
        """Install the model at ``path`` (LesionDetect bundle, or MONAI bundle folder or ``.zip``) with the
        library's ``models import``; returns its message. `LesionLabelsNeeded` (with the labels to choose from)
        when a MONAI bundle does not say which labels are lesions: call again with ``lesionLabels``."""
        exitCode, output, message = self.runLibrary(modelImport.importArguments(path, lesionLabels))
        modelImport.importOutcome(exitCode, message)
        return output.strip()

    def runLibrary(self, arguments: list[str]) -> tuple[int, str, str]:
        """Run ``PythonSlicer -m LesionDetectLib ARGUMENTS`` to its end through the process runner (Slicer stays
        responsive); returns its exit code, its standard output and its error message (`protocol.errorMessage`)."""
        if self.isRunning or self.processRunner.isRunning:
            raise DetectionError("A lesion detection is running; wait for it to finish or cancel it.")
        stdout, stderr, exitCodes = [], [], []
        self.processRunner.start([*self.libraryCommand(), *arguments], library.processEnvironment(),
                                 stdout.append, stderr.append, exitCodes.append)
        self.processRunner.wait()
        message = errorMessage(None, stderr, exitCodes[0]) if exitCodes[0] else ""
        return exitCodes[0], "\n".join(stdout), message

    def missingDependencies(self) -> list[str]:
        return dependencies.missingDependencies(self.findModule)

    def installDependencies(self, askConfirmation: bool = True) -> bool:
        """Install missing packages (see `dependencies.installDependencies`); False if the user declined."""
        return dependencies.installDependencies(self.findModule, askConfirmation)

    @staticmethod
    def checkInputVolume(volumeNode) -> None:
        """Raise `DetectionError` unless ``volumeNode`` is a 3-D single-component volume."""
        if volumeNode is None:
            raise DetectionError("Select an input volume first.")
        imageData = volumeNode.GetImageData()
        name = volumeNode.GetName()
        if imageData is None:
            raise DetectionError(f"The volume '{name}' has no image data.")
        if imageData.GetNumberOfScalarComponents() != 1:
            raise DetectionError(f"The volume '{name}' has several components per voxel (colour or vector image); "
                                 "LesionDetect needs a grayscale CT or MR volume.")
        dimensions = imageData.GetDimensions()
        if min(dimensions) < 2:
            raise DetectionError(f"The volume '{name}' is a 2-D image ({dimensions[0]}×{dimensions[1]}×"
                                 f"{dimensions[2]} voxels); LesionDetect needs a 3-D volume.")

    @classmethod
    def checkChannelVolumes(cls, volumeNode, channelVolumes: dict) -> None:
        """Raise `DetectionError` for a channel without a volume (None), or with the main input's or an unusable
        one, naming the channel."""
        cls.checkInputVolume(volumeNode)
        for name, node in channelVolumes.items():
            if node is None:
                raise DetectionError(f"Select the {name} volume: the model needs the {name} sequence beside the "
                                     "input volume.")
            if node is volumeNode:
                raise DetectionError(f"The {name} volume is the input volume; select the {name} sequence.")
            cls.checkInputVolume(node)

    def process(self, volumeNode, options: DetectionOptions | None = None, *, waitForCompletion: bool = True,
                progressCallback: ProgressCallback | None = None, completionCallback: CompletionCallback | None = None,
                channelVolumes: dict | None = None, **optionValues) -> DetectionNodes | None:
        """Detect lesions in ``volumeNode``; returns ``(segmentation, points, table)`` nodes.

        ``options`` (or `DetectionOptions` fields as keywords: ``model``, ``threshold``, ``minimumLesionSizeMm3``,
        ``device``, ``showIn3D``) say how. Earlier results for the same volume are replaced. With
        ``waitForCompletion=False`` the call returns None at once and ``completionCallback(RunOutcome)`` is called
        when the run ends; otherwise failures raise `DetectionFailedError` / `DetectionCancelledError`.
        ``channelVolumes`` (``{"T1": node, …}``) are a multi-channel model's other sequences beside ``volumeNode``
        (its main input and the outputs' grid); each goes to the command as ``--channel NAME=FILE``.
        """
        options = dataclasses.replace(options or DetectionOptions(), **optionValues)
        channelVolumes = dict(channelVolumes or {})
        self.checkChannelVolumes(volumeNode, channelVolumes)

        def load(outputFolder: str) -> RunOutcome:
            return RunOutcome(nodes=results.loadResults(outputFolder, INPUT_STEM, volumeNode, options.showIn3D))

        def command(folder: str) -> list[str]:
            channels = [f"{name}={self.writeInput(node, folder, f'channel-{number}')}"
                        for number, (name, node) in enumerate(channelVolumes.items(), start=1)]
            return [*self.detectCommand(self.writeInput(volumeNode, folder), os.path.join(folder, OUTPUT_FOLDER),
                                        options), *(part for channel in channels for part in ("--channel", channel))]

        run = self._start(volumeNode, command, load, progressCallback, completionCallback)
        if not waitForCompletion:
            return None
        return self._wait(run).nodes

    def addLesionAt(self, volumeNode, rasPoint, options: DetectionOptions | None = None, *,
                    waitForCompletion: bool = True, progressCallback: ProgressCallback | None = None,
                    completionCallback: CompletionCallback | None = None, **optionValues) -> str | None:
        """Add the lesion the reader points at: ``rasPoint`` (world RAS, e.g. a placed point or the crosshair) →
        the model on a local window around it, in the detection process (``lesiondetect add-lesion``) → a new
        lesion of ``volumeNode``'s results (segment, point, table row), accepted, origin "reader". Returns its label,
        or None when nothing lesion-like is there (then nothing is added). ``options`` as for `process`."""
        options = dataclasses.replace(options or DetectionOptions(), **optionValues)
        nodes = self.resultsFor(volumeNode)
        localPoint = self.localPoint(volumeNode, rasPoint)

        def load(outputFolder: str) -> RunOutcome:
            return RunOutcome(nodes=nodes, addedLabel=addedLesion.addFromFiles(outputFolder, INPUT_STEM, nodes))

        run = self._start(volumeNode, lambda folder: [
            *self.libraryCommand(), "add-lesion", self.writeInput(volumeNode, folder),
            "--at", *(repr(float(value)) for value in localPoint), "-o", os.path.join(folder, OUTPUT_FOLDER),
            "--progress", "jsonl", "--quiet", *options.commandArguments()], load, progressCallback, completionCallback)
        if not waitForCompletion:
            return None
        return self._wait(run).addedLabel

    def compareWithPrior(self, volumeNode, priorVolumeNode, options: DetectionOptions | None = None, *,
                         waitForCompletion: bool = True, progressCallback: ProgressCallback | None = None,
                         completionCallback: CompletionCallback | None = None,
                         **optionValues) -> ComparisonNodes | None:
        """Follow-up: what is new, enlarging, stable, shrinking or resolved in ``volumeNode`` since
        ``priorVolumeNode`` (``lesiondetect compare``, both scans detected with ``options`` as for `process`).

        The current volume's results are replaced by the comparison's (with a ``change`` column; new lesions in their
        own colour), the registration becomes a linear transform node under the current volume's parent transform,
        and the prior volume is put under it, so it shows aligned and can be adjusted. Returns `ComparisonNodes`
        (results, transform, summary counts). A refusal (scans that do not align) raises `ComparisonRefusedError`
        and changes nothing; with ``waitForCompletion=False`` the outcome says ``refused``."""
        options = dataclasses.replace(options or DetectionOptions(), **optionValues)
        if priorVolumeNode is None:
            raise DetectionError("Select the prior scan to compare with first.")
        self.checkInputVolume(priorVolumeNode)
        if priorVolumeNode is volumeNode:
            raise DetectionError("Choose a prior scan other than the current one.")

        def command(folder: str) -> list[str]:
            prior, current = (self.writeInput(node, folder, stem) for node, stem in
                              ((priorVolumeNode, "prior"), (volumeNode, comparison.CURRENT_STEM)))
            return [*self.libraryCommand(), "compare", prior, current, "-o", os.path.join(folder, OUTPUT_FOLDER),
                    "--progress", "jsonl", "--quiet", *options.commandArguments()]

        def load(outputFolder: str) -> RunOutcome:
            if priorVolumeNode.GetScene() is None:
                return RunOutcome(error="The prior volume was removed from the scene during the comparison.")
            loaded = comparison.loadComparison(outputFolder, volumeNode, priorVolumeNode, options.showIn3D)
            return RunOutcome(nodes=loaded.nodes, comparison=loaded)

        run = self._start(volumeNode, command, load, progressCallback, completionCallback)
        if not waitForCompletion:
            return None
        return self._wait(run).comparison

    @staticmethod
    def localPoint(volumeNode, rasPoint) -> list[float]:
        """``rasPoint`` (world) in the volume's own RAS, without its parent transforms (the files' coordinates)."""
        toLocal = vtk.vtkGeneralTransform()
        slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, volumeNode.GetParentTransformNode(), toLocal)
        return list(toLocal.TransformPoint([float(value) for value in rasPoint]))

    def _start(self, volumeNode, commandFor: Callable[[str], list[str]], load: Callable[[str], RunOutcome],
               progressCallback: ProgressCallback | None, completionCallback: CompletionCallback | None) -> _Run:
        """Check and start ``commandFor(runFolder)`` (which writes its inputs into the run's temporary folder and
        its outputs into `OUTPUT_FOLDER` there); ``load(outputFolder)`` makes the outcome when it succeeds."""
        if self.isRunning:
            raise DetectionError("A lesion detection is already running; wait for it to finish or cancel it.")
        self.checkInputVolume(volumeNode)
        missing = self.missingDependencies()
        if missing:
            raise MissingDependenciesError(
                f"Missing Python packages: {', '.join(missing)}. Open the LesionDetect module and click "
                "'Detect lesions' to install them, or call LesionDetectLogic().installDependencies()."
            )
        folder = tempfile.mkdtemp(prefix="LesionDetect-", dir=slicer.app.temporaryPath)
        run = _Run(volumeNode, folder, load, progressCallback, completionCallback)
        try:
            run.report(ProgressEvent("read", 0.0, "writing the volume for the detection process"))
            command = commandFor(folder)
            environment = library.processEnvironment()
            self._run = run
            self.processRunner.start(command, environment, self._onStdoutLine, self._onStderrLine, self._onFinished)
        except Exception:
            self._run = None
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return run

    def _wait(self, run: _Run) -> RunOutcome:
        """Wait for ``run`` to end; its outcome, or `DetectionFailedError` / `DetectionCancelledError`."""
        self.processRunner.wait()
        if run.outcome.cancelled:
            raise DetectionCancelledError("Lesion detection was cancelled.")
        if run.outcome.refused:
            raise ComparisonRefusedError(run.outcome.error)
        if run.outcome.error:
            raise DetectionFailedError(run.outcome.error)
        return run.outcome

    @staticmethod
    def writeInput(volumeNode, folder: str, stem: str = INPUT_STEM) -> str:
        """The volume as an uncompressed NRRD in its own IJK→RAS (``world=False``; see `results` for transforms),
        written through a temporary copy: the node keeps its own storage node and file name."""
        path = os.path.join(folder, f"{stem}.nrrd")
        if not slicer.util.exportNode(volumeNode, path, {"useCompression": 0, "fileFormat": VOLUME_FILE_FORMAT},
                                      world=False):
            raise DetectionError(f"Could not write the volume '{volumeNode.GetName()}' to {folder}.")
        return path

    def libraryCommand(self) -> list[str]:
        """``PythonSlicer -m LesionDetectLib``: the detection process's command, without its subcommand."""
        return [library.pythonExecutable(self.pythonExecutable), "-m", library.LIBRARY]

    def detectCommand(self, inputPath: str, outputFolder: str, options: DetectionOptions) -> list[str]:
        return [*self.libraryCommand(), "detect", inputPath, "-o", outputFolder, "--progress", "jsonl", "--quiet",
                *options.commandArguments()]

    def cancel(self) -> None:
        """Stop the running detection; the scene is left as it was and temporary files are removed."""
        if self._run is not None and not self._run.cancelRequested:
            self._run.cancelRequested = True
            self.processRunner.cancel()

    def _onStdoutLine(self, line: str) -> None:
        event = parseProgressLine(line)
        if event is None:
            logging.info(f"LesionDetect: {line}")
        elif event.stage == "error":
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
            run.outcome = self._outcome(run, exitCode)
        except Exception as error:  # a damaged result or a bug: the user gets a message, the scene is unchanged
            logging.exception("LesionDetect: loading the results failed")
            run.outcome = RunOutcome(error=str(error))
        finally:
            shutil.rmtree(run.folder, ignore_errors=True)
        if run.completionCallback is not None:
            run.completionCallback(run.outcome)

    @staticmethod
    def _outcome(run: _Run, exitCode: int) -> RunOutcome:
        if run.cancelRequested or exitCode == CANCELLED_EXIT_CODE:
            return RunOutcome(cancelled=True)
        if exitCode != 0:
            return RunOutcome(error=errorMessage(run.errorEvent, list(run.stderrTail), exitCode),
                              refused=exitCode == REFUSED_EXIT_CODE)
        if run.volumeNode.GetScene() is None:
            return RunOutcome(error="The input volume was removed from the scene during the detection.")
        run.report(ProgressEvent("load", 1.0, "creating segmentation, points and table"))
        outcome = run.load(os.path.join(run.folder, OUTPUT_FOLDER))
        outcome.warnings = run.warnings
        return outcome

    @staticmethod
    def resultsFor(volumeNode) -> DetectionNodes:
        """The result nodes of ``volumeNode``; `DetectionError` if it has none."""
        nodes = results.findResults(volumeNode)
        if nodes is None:
            name = volumeNode.GetName() if volumeNode is not None else "no volume"
            raise DetectionError(f"There are no lesion detection results for '{name}'; detect lesions first.")
        return nodes

    def setLesionStatus(self, volumeNode, label: str, status: str) -> None:
        """Mark lesion ``label`` (``L1``…) unreviewed, accepted or rejected; a rejected lesion's segment and point
        are hidden (never deleted), and shown again when its status changes."""
        review.setStatus(self.resultsFor(volumeNode), label, status)

    def setLesionComment(self, volumeNode, label: str, comment: str) -> None:
        review.setComment(self.resultsFor(volumeNode), label, comment)

    def lesionReview(self, volumeNode, label: str) -> dict[str, str]:
        """``{"status", "comment", "origin"}`` of lesion ``label``."""
        return review.lesionReview(self.resultsFor(volumeNode).table, label)

    def reviewOrder(self, volumeNode) -> list[str]:
        """The lesions' labels, most confident first: the order next/previous steps through."""
        return review.reviewOrder(self.resultsFor(volumeNode).table)

    def stepLesion(self, volumeNode, currentLabel: str | None, step: int = 1) -> str | None:
        """Go ``step`` lesions on from ``currentLabel`` in review order and centre the views there; its label."""
        nodes = self.resultsFor(volumeNode)
        label = review.stepLesion(nodes.table, currentLabel, step)
        if label is not None:
            self.jumpToLesion(nodes.points, label)
        return label

    def updateMeasurements(self, volumeNode) -> list[str]:
        """Measure the lesions again from their segments (after a Segment Editor edit): voxel count, volume and
        diameters in the table; returns the labels that changed."""
        return measurements.updateMeasurements(self.resultsFor(volumeNode), volumeNode)

    def reviewSummary(self, volumeNode) -> dict:
        """Counts and total volumes by status (``LesionDetectLib.review.review_summary``)."""
        return review.summary(self.resultsFor(volumeNode).table)

    def exportReviewedSet(self, volumeNode, folder: str, stem: str | None = None) -> dict[str, str]:
        """Write the reviewed lesions of ``volumeNode`` into ``folder`` as ``<stem>.seg.nrrd``, ``.mrk.json``,
        ``.lesions.csv``/``.json`` (with each lesion's status, comment and origin) and ``.review.txt`` (the
        summary), all or none; ``stem`` defaults to the volume's name. Returns the paths by kind."""
        from LesionDetectLib.errors import OutputError

        nodes = self.resultsFor(volumeNode)
        if not folder:
            raise DetectionError("Choose the folder to export the reviewed lesions to.")
        try:
            return review.exportReviewedSet(nodes, folder, stem or review.fileStem(volumeNode.GetName()))
        except (OutputError, OSError) as error:
            raise DetectionError(f"The reviewed lesions were not exported: {error}") from error

    def exportDicomSeg(self, volumeNode, path: str, sourceFiles: list[str] | None = None) -> str | None:
        """Write the accepted lesions of ``volumeNode`` as a DICOM Segmentation at ``path``, over the volume's source
        series: ``sourceFiles``, by default the files Slicer's DICOM database holds for the volume. Made by the
        detection process (``lesiondetect dicom-seg``, highdicom); returns ``path``, or None (no file) when no
        lesion is accepted. Failures raise `DetectionFailedError`."""
        nodes = self.resultsFor(volumeNode)
        sourceFiles = sourceFiles or review.dicomSourceFiles(volumeNode)
        accepted = [row for row in results.lesionRows(nodes.table) if row["status"] == ACCEPTED]
        if not accepted:
            return None

        def command(folder: str) -> list[str]:
            labelmap, table = review.writeLabelmapAndTable(nodes, volumeNode, accepted, folder)
            return [*self.libraryCommand(), "dicom-seg", labelmap, "--table", table, "--source", *sourceFiles,
                    "-o", os.path.join(folder, OUTPUT_FOLDER, "lesions.seg.dcm")]

        def load(outputFolder: str) -> RunOutcome:
            review.publish(os.path.join(outputFolder, "lesions.seg.dcm"), path)
            return RunOutcome(nodes=nodes)

        self._wait(self._start(volumeNode, command, load, None, None))
        return path

    @staticmethod
    def jumpToLesion(pointsNode, label: str) -> None:
        """Centre the slice views on the control point labelled ``label`` (world position, transforms included)."""
        index = results.controlPointIndex(pointsNode, label)
        if index >= 0:
            slicer.modules.markups.logic().JumpSlicesToNthPointInMarkup(pointsNode.GetID(), index, True)
