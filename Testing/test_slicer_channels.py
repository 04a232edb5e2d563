"""The panel's multi-sequence input (one volume selector per channel of the chosen model, filled by name, written
with its own geometry and passed as ``--channel``) and its model import (``models import`` in a separate process,
with the lesion labels chosen in a checkable list when a MONAI bundle does not say them); real MRML (slicer-core)."""

from __future__ import annotations

import importlib
import logging

import numpy as np
import pytest
import SimpleITK as sitk
from real_slicer import waitUntilIdle

pytest_plugins = ("real_slicer",)  # the `slicer` and `lesionDetect` fixtures

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def record(name, *channels):
    ModelRecord = importlib.import_module("LesionDetectModuleLib.modelList").ModelRecord
    return ModelRecord(name, "1.0", "MR", f"{name} model", 0.5, tuple(channels))


@pytest.fixture
def panel(slicer, lesionDetect, monkeypatch):
    """The panel, listing a four-sequence model and a one-sequence one; detection runs the intensity stand-in
    (which reads the main input only) in a real process, keeping a copy of each channel file it is given."""
    testRunners = importlib.import_module("LesionDetectModuleLib.testRunners")

    class ChannelKeepingRunner(testRunners.IntensityModelRunner):
        def start(self, command, environment, onStdoutLine, onStderrLine, onFinished):
            self.channelImages = {}
            for position, argument in enumerate(command):
                if argument == "--channel":
                    name, _, path = command[position + 1].partition("=")
                    self.channelImages[name] = sitk.ReadImage(path)
            super().start(command, environment, onStdoutLine, onStderrLine, onFinished)

    widget = slicer.util.getModuleWidget("LesionDetect")
    widget.parent.isEntered = True
    widget.logic.processRunner = ChannelKeepingRunner()
    widget.logic.findModule = lambda name: True
    widget.models.listModels = lambda: [record("brats", "FLAIR", "T1", "T1c", "T2"), record("flair", "FLAIR")]
    widget.models.populate()
    return widget


def choose(panel, name):
    combo = panel.ui.modelComboBox
    combo.currentIndex = combo.findData(name)


def rows(panel):
    layout = panel.ui.channelsWidget.layout()
    return [(label, selector.currentNode().GetName() if selector.currentNode() else None)
            for label, selector in getattr(layout, "formRows", [])]


def addVolume(slicer, name, ijkToRas=None, shape=(6, 7, 8)):
    voxels = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    return slicer.util.addVolumeFromArray(voxels, np.eye(4) if ijkToRas is None else ijkToRas, name=name)


def test_one_selector_per_extra_channel_labelled_and_filled_by_name(slicer, panel):
    flair = addVolume(slicer, "Case 7 FLAIR")
    for name in ("Case 7 t1c", "Case 7 T1", "Other scan"):
        addVolume(slicer, name)
    panel.ui.inputVolumeSelector.setCurrentNode(flair)
    assert not panel.ui.channelsWidget.visible  # the automatic choice: one volume
    choose(panel, "brats")
    assert panel.ui.channelsWidget.visible
    assert rows(panel) == [("T1 volume:", "Case 7 T1"), ("T1c volume:", "Case 7 t1c"), ("T2 volume:", None)]
    assert "Sequences: FLAIR, T1, T1c, T2 (the input volume is the FLAIR)" in panel.ui.modelDescriptionLabel.text
    t2 = addVolume(slicer, "case 7 T2 axial")
    panel.ui.inputVolumeSelector.setCurrentNode(flair)
    choose(panel, "flair")
    assert not panel.ui.channelsWidget.visible and rows(panel) == []
    choose(panel, "brats")  # fresh selectors, filled by name again, the new T2 too
    assert rows(panel)[2] == ("T2 volume:", t2.GetName())


def test_missing_channel_is_named_before_anything_runs(slicer, panel, caplog):
    panel.ui.inputVolumeSelector.setCurrentNode(addVolume(slicer, "FLAIR"))
    addVolume(slicer, "T1")
    choose(panel, "brats")
    with caplog.at_level(logging.ERROR):
        panel.ui.applyButton.click()
    assert panel.ui.statusLabel.text == "Select the T1c volume: the model needs the T1c sequence beside the input volume."
    assert panel.logic.processRunner.commands == [] and not panel.logic.isRunning


def test_channels_go_to_the_command_as_files_that_overlay_their_volumes(slicer, panel):
    logicTests = importlib.import_module("LesionDetectModuleLib.logicTests")
    flair, *_ = logicTests.LesionDetectLogicTest("test_segments_points_and_table_overlay_the_input").makeVolume(
        name="Patient FLAIR")  # oblique, anisotropic, non-zero origin, under a parent transform
    grids = {}
    for number, name in enumerate(("T1", "T1c", "T2"), start=1):
        ijkToRas = np.eye(4)
        ijkToRas[:3, :3] = logicTests.rotation((1, -1, 2), 20 * number) @ np.diag([0.9, 1.3 * number, 3.0])
        ijkToRas[:3, 3] = (-12.5 * number, 30.0, 7.25)
        grids[name] = (addVolume(slicer, f"Patient {name}", ijkToRas, shape=(5 + number, 9, 11)), ijkToRas)
    transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = (4.0, -2.0, 9.0)
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shift))
    grids["T1"][0].SetAndObserveTransformNodeID(transform.GetID())  # written without it, as the input is
    panel.ui.inputVolumeSelector.setCurrentNode(flair)
    choose(panel, "brats")
    assert [row[1] for row in rows(panel)] == ["Patient T1", "Patient T1c", "Patient T2"]
    panel.ui.applyButton.click()
    command = panel.logic.processRunner.commands[-1]
    assert [command[n + 1].split("=")[0] for n, part in enumerate(command) if part == "--channel"] == ["T1", "T1c",
                                                                                                       "T2"]
    images = panel.logic.processRunner.channelImages
    for name, (node, ijkToRas) in grids.items():
        image = images[name]
        direction = np.array(image.GetDirection()).reshape(3, 3)
        np.testing.assert_allclose(LPS_TO_RAS @ direction @ np.diag(image.GetSpacing()), ijkToRas[:3, :3], atol=1e-6)
        np.testing.assert_allclose(LPS_TO_RAS @ np.array(image.GetOrigin()), ijkToRas[:3, 3], atol=1e-6)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), slicer.util.arrayFromVolume(node))
    waitUntilIdle(slicer, panel.logic)
    assert panel.ui.resultsTable.rowCount() == 2  # the detection on the main input went on as before


class ImportAnsweringRunner:
    """Answers ``models import`` as the library does for a bundle whose metadata names no lesion labels: exit 4
    with the library's own message (`metadata.lesion_labels`), then success once --lesion-labels is given."""

    isRunning = False

    def __init__(self):
        from LesionDetectLib.errors import ModelBundleError
        from LesionDetectLib.monai_bundle.metadata import lesion_labels

        self.commands = []
        try:
            lesion_labels({}, {"task": "segmentation", "activation": "sigmoid"}, None,
                          {"0": "Tumor core", "1": "Whole tumor", "2": "Enhancing tumor"}, "brats.zip")
        except ModelBundleError as error:
            self.prompt, self.exitCode = str(error), error.exit_code

    def start(self, command, environment, onStdoutLine, onStderrLine, onFinished):
        self.commands.append(list(command))
        if "--lesion-labels" in command:
            onStdoutLine("imported into /models/brats")
            onFinished(0)
        else:
            onStderrLine(f"lesiondetect: error: {self.prompt}")
            onFinished(self.exitCode)

    def wait(self):
        pass


def test_import_asks_for_the_lesion_labels_in_a_checkable_list_and_runs_again(slicer, panel, monkeypatch):
    from qt_standin import QDialog, QFileDialog, qt

    panel.logic.processRunner = ImportAnsweringRunner()
    listed = []
    panel.models.listModels = lambda: listed
    offered = []

    def checkWholeTumour(dialog):
        listWidget = next(child for child in dialog.children() if isinstance(child, qt.QListWidget))
        offered.extend(listWidget.item(row).text() for row in range(listWidget.count))
        listWidget.item(1).setCheckState(qt.Qt.Checked)
        listed.append(record("brats", "FLAIR", "T1", "T1c", "T2"))  # what the import installed
        return QDialog.Accepted

    QDialog.answer = checkWholeTumour
    QFileDialog.answers.append("/data/brats.zip")
    panel.ui.importModelFileButton.click()
    assert QFileDialog.asked == [("file", "Import a model (.zip)", "Model bundles (*.zip)")]
    assert offered == ["0: Tumor core", "1: Whole tumor", "2: Enhancing tumor"]
    imports = [command[command.index("models"):] for command in panel.logic.processRunner.commands]
    assert imports == [["models", "import", "/data/brats.zip"],
                       ["models", "import", "/data/brats.zip", "--lesion-labels", "1"]]
    assert panel.ui.statusLabel.text == "Model 'brats' imported."
    assert panel.models.nameAt(panel.ui.modelComboBox.currentIndex) == "brats"
    assert [row[0] for row in rows(panel)] == ["T1 volume:", "T1c volume:", "T2 volume:"]

    QDialog.answer = lambda dialog: QDialog.Rejected  # cancelled: nothing imported, nothing run again
    QFileDialog.answers.append("/data/other-bundle")
    panel.ui.importModelFolderButton.click()
    assert len(panel.logic.processRunner.commands) == 3
    assert panel.ui.statusLabel.text == "Not imported: no lesion label was chosen."
    QFileDialog.answers.append("")  # the file chooser cancelled: nothing runs
    panel.ui.importModelFileButton.click()
    assert len(panel.logic.processRunner.commands) == 3


def test_a_failed_import_shows_the_librarys_message_through_the_real_process(slicer, lesionDetect, tmp_path,
                                                                             isolated_models, caplog):
    widget = slicer.util.getModuleWidget("LesionDetect")
    notABundle = tmp_path / "notes"
    notABundle.mkdir()
    (notABundle / "readme.txt").write_text("no model here", encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        widget.imports.importModel(str(notABundle))
    assert widget.ui.statusLabel.text == "The model was not imported."
    assert any(message.startswith("The model was not imported: ") and "notes" in message
               for message in caplog.messages), caplog.messages
    assert not isolated_models.exists() or list(isolated_models.iterdir()) == []


def test_the_model_list_comes_from_the_library_process_with_each_models_channels(slicer, lesionDetect):
    models = slicer.util.getModuleWidget("LesionDetect").models.models
    assert models["ms-flair-lesions"].inputChannels == ("FLAIR",) and models["ct-tumours"].inputChannels == ("CT",)
    assert models["ms-flair-t1-lesions"].inputChannels == ("FLAIR", "T1")


def test_the_ms_sample_fills_the_t1_selector_of_the_flair_t1_model(slicer, lesionDetect):
    """README tutorial: Sample Data's MS sample loads MSFLAIR and MST1; choosing ms-flair-t1-lesions fills its T1
    selector with MST1, and the FLAIR-only model needs none."""
    lesionDetect.registerSampleData()
    source = next(source for source in slicer.app.sampleSources if source["sampleName"] == "LesionDetect MS FLAIR + T1")
    flair, t1 = (addVolume(slicer, name) for name in source["nodeNames"])  # as Sample Data loads them, in order
    widget = slicer.util.getModuleWidget("LesionDetect")
    widget.ui.inputVolumeSelector.setCurrentNode(flair)
    choose(widget, "ms-flair-t1-lesions")
    assert widget.ui.channelsWidget.visible and rows(widget) == [("T1 volume:", t1.GetName())]
    description = widget.ui.modelDescriptionLabel.text
    assert "FLAIR and T1" in description and "Sequences: FLAIR, T1 (the input volume is the FLAIR)" in description
    assert widget.channels.volumes() == {"T1": t1}
    choose(widget, "ms-flair-lesions")
    assert not widget.ui.channelsWidget.visible and rows(widget) == []
    assert "one skull-stripped FLAIR" in widget.ui.modelDescriptionLabel.text
