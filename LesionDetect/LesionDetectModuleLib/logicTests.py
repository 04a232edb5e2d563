"""Logic tests of the LesionDetect module on real MRML: run by pytest (slicer-core) and by the module's self-test
inside Slicer (Reload & Test), with the real process runner and a stand-in model (`intensityModel`).

The synthetic volume is oblique, flipped and anisotropic with a non-zero origin, under a rotated parent transform
and inside a patient's study, with two bright spheres (the lesions).
"""

from __future__ import annotations

import collections
import csv
import json
import math
import os
import shutil
import tempfile
import unittest

import numpy as np
import slicer
import vtk
import vtk.util.numpy_support

from .errors import DetectionError, DetectionFailedError
from .logic import LesionDetectLogic
from .results import findResults, lesionRows, loadResults
from .testRunners import IntensityModelRunner

SPHERES = ((20, 14, 8, 4.0), (8, 6, 13, 2.6))  # (i, j, k, radius in voxels); the first is the larger lesion


def rotation(axis, degrees: float) -> np.ndarray:
    x, y, z = np.asarray(axis, float) / np.linalg.norm(axis)
    cross = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    angle = math.radians(degrees)
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def sceneSnapshot() -> list:
    """Every node (ID, class, name, attributes) and every data node's subject-hierarchy parent."""
    scene = slicer.mrmlScene
    shNode = scene.GetSubjectHierarchyNode()
    nodes = [scene.GetNthNode(n) for n in range(scene.GetNumberOfNodes())]
    return sorted((node.GetID(), node.GetClassName(), node.GetName(),
                   tuple((name, node.GetAttribute(name)) for name in sorted(node.GetAttributeNames() or ())),
                   shNode.GetItemParent(shNode.GetItemByDataNode(node))) for node in nodes)


def nodeClassCounts() -> collections.Counter:
    scene = slicer.mrmlScene
    return collections.Counter(scene.GetNthNode(n).GetClassName() for n in range(scene.GetNumberOfNodes()))


def matrixArray(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


class LesionDetectLogicTest(unittest.TestCase):
    """Each test starts from an empty scene."""

    pythonExecutable: str | None = None
    """The detection process's Python; None: ``PythonSlicer`` (inside Slicer)."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear(0)

    def temporaryFolder(self) -> str:
        """A new folder in Slicer's temporary folder, removed after the test."""
        folder = tempfile.mkdtemp(prefix="LesionDetectTest-", dir=slicer.app.temporaryPath)
        self.addCleanup(shutil.rmtree, folder, True)
        return folder

    def makeLogic(self, *arguments: str, damage=None) -> LesionDetectLogic:
        return LesionDetectLogic(processRunner=IntensityModelRunner(*arguments, damage=damage),
                                 findModule=lambda name: True, pythonExecutable=self.pythonExecutable)

    def makeVolume(self, name="Patient MR", lesions=SPHERES, transformed=True, inStudy=True):
        """Returns the node, its IJK→RAS, its study item and the lesions' expected local and world centres."""
        k, j, i = np.mgrid[0:20, 0:24, 0:32]
        voxels = np.zeros((20, 24, 32), dtype=np.int16)  # FLAIR-like: dark outside a textured "brain"
        voxels[2:18, 3:21, 3:29] = 100 + np.random.default_rng(7).integers(0, 20, (16, 18, 26))
        for ci, cj, ck, radius in lesions:
            voxels[(i - ci) ** 2 + (j - cj) ** 2 + (k - ck) ** 2 <= radius**2] = 400
        ijkToRas = np.eye(4)
        ijkToRas[:3, :3] = rotation((1, 2, 3), 35) @ np.diag([1, 1, -1]) @ np.diag([0.7, 1.1, 2.5])
        ijkToRas[:3, 3] = (-40.5, 12.25, 80.0)
        volume = slicer.util.addVolumeFromArray(voxels, ijkToRas, name=name)
        toWorld = np.eye(4)
        if transformed:
            toWorld[:3, :3], toWorld[:3, 3] = rotation((0, 0, 1), 30), (5.0, -3.0, 2.0)
            transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
            transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(toWorld))
            volume.SetAndObserveTransformNodeID(transform.GetID())
        study = None
        if inStudy:
            shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
            study = shNode.CreateStudyItem(shNode.CreateSubjectItem(shNode.GetSceneItemID(), "Patient"), "Study")
            shNode.SetItemParent(shNode.GetItemByDataNode(volume), study)
        local = [(ijkToRas @ np.array([ci, cj, ck, 1.0]))[:3] for ci, cj, ck, _ in lesions]
        world = [(toWorld @ np.append(point, 1.0))[:3] for point in local]
        return volume, ijkToRas, study, local, world

    def test_segments_points_and_table_overlay_the_input(self):
        volume, ijkToRas, study, local, world = self.makeVolume()
        logic = self.makeLogic()
        seg, points, table = logic.process(volume, threshold=0.4)
        self.assertEqual([node.GetName() for node in (seg, points, table)],
                         ["Patient MR lesions", "Patient MR lesion points", "Patient MR lesion table"])
        segmentation = seg.GetSegmentation()
        self.assertEqual([segmentation.GetNthSegment(n).GetName() for n in range(2)], ["Lesion 1", "Lesion 2"])
        for n in range(2):  # every segment on the input's voxel grid, under the input's parent transform
            labelmap = segmentation.GetNthSegment(n).GetRepresentation("Binary labelmap")
            imageToWorld = vtk.vtkMatrix4x4()
            labelmap.GetImageToWorldMatrix(imageToWorld)
            np.testing.assert_allclose(matrixArray(imageToWorld), ijkToRas, atol=1e-5)
        self.assertEqual(seg.GetTransformNodeID(), volume.GetTransformNodeID())
        self.assertEqual(points.GetTransformNodeID(), volume.GetTransformNodeID())
        self.assertEqual([points.GetNthControlPointLabel(n) for n in range(points.GetNumberOfControlPoints())],
                         ["L1", "L2"])
        for n in range(2):
            np.testing.assert_allclose(points.GetNthControlPointPosition(n), local[n], atol=1e-3)
            np.testing.assert_allclose(points.GetNthControlPointPositionWorld(n), world[n], atol=1e-3)
        self.assertEqual(table.GetNumberOfRows(), 2)
        columns = table.GetTable()
        self.assertEqual(columns.GetColumnByName("id").GetClassName(), "vtkIntArray")
        self.assertEqual(columns.GetColumnByName("volume_mm3").GetClassName(), "vtkDoubleArray")
        self.assertEqual([columns.GetColumnByName("label").GetValue(n) for n in range(2)], ["L1", "L2"])
        np.testing.assert_allclose([columns.GetColumnByName(f"centroid_{axis}").GetValue(0) for axis in "ras"],
                                   local[0], atol=1e-3)
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        for node in (seg, points, table):
            self.assertEqual(node.GetAttribute("LesionDetect.InputVolumeID"), volume.GetID())
            self.assertEqual(shNode.GetItemParent(shNode.GetItemByDataNode(node)), study)
            self.assertIsNone(node.GetStorageNode())  # no link to the deleted temporary files
        command = logic.processRunner.commands[-1]
        self.assertEqual(command[command.index("--threshold") + 1], "0.4")
        self.assertIsNone(volume.GetStorageNode())  # exporting left the input's storage alone

    def test_rerun_replaces_only_that_volumes_results_and_leaves_no_orphans(self):
        first, *_ = self.makeVolume("First")
        other, *_ = self.makeVolume("Other", transformed=False, inStudy=False)
        logic = self.makeLogic()
        old = logic.process(first)
        others = logic.process(other)
        counts = nodeClassCounts()
        new = logic.process(first)
        self.assertEqual(nodeClassCounts(), counts)
        self.assertTrue(all(node.GetScene() is None for node in old))
        self.assertTrue(all(node.GetScene() is not None for node in (*new, *others)))
        self.assertEqual(findResults(first), new)
        self.assertEqual(findResults(other), others)

    def test_lesion_free_scan_gives_empty_results_that_replace_earlier_ones(self):
        volume, *_ = self.makeVolume(lesions=())
        seg, points, table = self.makeLogic().process(volume)
        self.assertEqual((seg.GetSegmentation().GetNumberOfSegments(), points.GetNumberOfControlPoints(),
                          table.GetNumberOfRows()), (0, 0, 0))
        self.assertEqual(seg.GetName(), "Patient MR lesions")

    def test_cancel_leaves_the_scene_and_earlier_results_as_they_were(self):
        volume, *_ = self.makeVolume()
        previous = self.makeLogic().process(volume)
        before = sceneSnapshot()
        logic = self.makeLogic("--hang")
        outcomes, progress = [], []
        self.assertIsNone(logic.process(volume, waitForCompletion=False, progressCallback=progress.append,
                                        completionCallback=outcomes.append))
        while len(progress) < 2:  # the module's own "read", then the process's
            logic.processRunner.poll()
        logic.cancel()
        logic.processRunner.wait()
        self.assertEqual([outcome.cancelled for outcome in outcomes], [True])
        self.assertFalse(logic.isRunning)
        self.assertEqual(sceneSnapshot(), before)
        self.assertEqual(findResults(volume), previous)

    def test_damaged_or_inconsistent_results_change_nothing(self):
        cases = {
            "unreadable point position": (editPoints(lambda points: points[0].update(position="unreadable")), "L1"),
            "point missing": (editPoints(lambda points: points.pop()), "point list has points"),
            "segment missing": ("--drop-last-segment", "segmentation has segments"),
            "truncated segmentation": (truncate("volume.seg.nrrd"), "damaged or truncated"),
            "truncated points": (truncate("volume.mrk.json"), "Failed to load"),
            "truncated table": (truncate("volume.lesions.csv"), "incomplete"),
        }
        volume, *_ = self.makeVolume()
        previous = self.makeLogic().process(volume)
        before = sceneSnapshot()
        for case, (damage, message) in cases.items():
            with self.subTest(case):
                logic = self.makeLogic(damage) if isinstance(damage, str) else self.makeLogic(damage=damage)
                with self.assertRaisesRegex(DetectionFailedError, message):
                    logic.process(volume)
                self.assertEqual(sceneSnapshot(), before)
                self.assertEqual(findResults(volume), previous)

    def test_unusable_inputs_are_refused_before_anything_runs(self):
        logic = self.makeLogic()
        flat = slicer.util.addVolumeFromArray(np.zeros((1, 8, 8), np.int16), name="flat")
        vector = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "rgb")
        imageData = vtk.vtkImageData()
        imageData.SetDimensions(8, 8, 4)
        imageData.AllocateScalars(vtk.VTK_SHORT, 2)
        vector.SetAndObserveImageData(imageData)
        for volume, message in ((None, "Select an input volume"), (flat, "2-D image"), (vector, "grayscale")):
            with self.subTest(message), self.assertRaisesRegex(DetectionError, message):
                logic.process(volume)
        self.assertEqual(logic.processRunner.commands, [])

    def test_a_crash_is_reported_with_the_end_of_its_traceback(self):
        volume, *_ = self.makeVolume()
        before = sceneSnapshot()
        with self.assertRaisesRegex(DetectionFailedError, "CUDA error: out of memory"):
            self.makeLogic("--crash").process(volume)
        self.assertEqual(sceneSnapshot(), before)

    def test_review_hides_rejected_lesions_and_survives_saving_and_reloading_the_scene(self):
        volume, *_ = self.makeVolume()
        logic = self.makeLogic()
        seg, points, table = logic.process(volume)
        self.assertEqual([logic.lesionReview(volume, label) for label in ("L1", "L2")],
                         [{"status": "unreviewed", "comment": "", "origin": "model"}] * 2)
        logic.setLesionStatus(volume, "L1", "accepted")
        logic.setLesionComment(volume, "L1", "solid,\n  spiculated | 9 mm")
        logic.setLesionStatus(volume, "L2", "rejected")
        with self.assertRaisesRegex(ValueError, "unreviewed, accepted, rejected"):
            logic.setLesionStatus(volume, "L2", "maybe")
        with self.assertRaisesRegex(ValueError, "no lesion 'L9'"):
            logic.setLesionStatus(volume, "L9", "accepted")
        self.assertEqual(shownLesions(seg, points), ({"Lesion_1": True, "Lesion_2": False}, [True, False]))
        self.assertEqual(seg.GetSegmentation().GetNumberOfSegments(), 2)  # hidden, not deleted
        self.assertEqual(points.GetNumberOfControlPoints(), 2)
        self.assertTrue(points.GetNthControlPointDescription(1).startswith("rejected (model): confidence"))
        logic.setLesionStatus(volume, "L2", "unreviewed")
        self.assertEqual(shownLesions(seg, points), ({"Lesion_1": True, "Lesion_2": True}, [True, True]))
        logic.setLesionStatus(volume, "L2", "rejected")

        saveAndReloadScene(os.path.join(self.temporaryFolder(), "scene"))
        reloaded = findResults(slicer.mrmlScene.GetNodeByID(volume.GetID()))
        self.assertIsNotNone(reloaded)
        self.assertTrue(all(node.GetScene() is None for node in (seg, points, table)))
        reloadedVolume = slicer.mrmlScene.GetNodeByID(volume.GetID())
        self.assertEqual([logic.lesionReview(reloadedVolume, label) for label in ("L1", "L2")], [
            {"status": "accepted", "comment": "solid, spiculated | 9 mm", "origin": "model"},
            {"status": "rejected", "comment": "", "origin": "model"}])
        self.assertEqual(shownLesions(reloaded.segmentation, reloaded.points),
                         ({"Lesion_1": True, "Lesion_2": False}, [True, False]))
        self.assertEqual(logic.reviewSummary(reloadedVolume)["count_by_status"],
                         {"unreviewed": 0, "accepted": 1, "rejected": 1})

    def test_next_and_previous_step_by_confidence_and_centre_the_views(self):
        volume, _, _, _, world = self.makeVolume()
        logic = self.makeLogic()
        _, _, table = logic.process(volume)
        table.GetTable().GetColumnByName("confidence_max").SetValue(0, 0.61)  # the model was less sure of L1
        self.assertEqual(logic.reviewOrder(volume), ["L2", "L1"])
        red = slicer.mrmlScene.GetNodeByID("vtkMRMLSliceNodeRed")
        for current, step, expected in ((None, 1, "L2"), ("L2", 1, "L1"), ("L1", 1, "L2"), ("L2", -1, "L1"),
                                        (None, -1, "L1")):
            self.assertEqual(logic.stepLesion(volume, current, step), expected)
            centre = [red.GetSliceToRAS().GetElement(row, 3) for row in range(3)]
            np.testing.assert_allclose(centre, world[int(expected[1:]) - 1], atol=1e-3)
        empty, *_ = self.makeVolume("Empty", lesions=(), transformed=False, inStudy=False)
        logic.process(empty)
        self.assertIsNone(logic.stepLesion(empty, None, 1))
        with self.assertRaisesRegex(DetectionError, "no lesion detection results"):
            logic.reviewOrder(self.makeVolume("Never run", transformed=False, inStudy=False)[0])

    def test_export_of_the_reviewed_set_carries_status_comment_origin_and_reloads(self):
        import nrrd

        volume, *_ = self.makeVolume()
        logic = self.makeLogic()
        logic.process(volume)
        logic.setLesionStatus(volume, "L1", "accepted")
        logic.setLesionComment(volume, "L1", "new since last scan")
        logic.setLesionStatus(volume, "L2", "rejected")
        folder = os.path.join(self.temporaryFolder(), "reviewed")
        paths = logic.exportReviewedSet(volume, folder)
        self.assertEqual(sorted(os.listdir(folder)), sorted(os.path.basename(path) for path in paths.values()))
        self.assertEqual(os.path.basename(paths["table_csv"]), "Patient_MR.lesions.csv")
        with open(paths["table_csv"], encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
        self.assertEqual([(row["label"], row["status"], row["comment"], row["origin"]) for row in rows],
                         [("L1", "accepted", "new since last scan", "model"), ("L2", "rejected", "", "model")])
        with open(paths["table_json"], encoding="utf-8") as file:
            document = json.load(file)
        self.assertEqual(document["format"], "lesiondetect.review")
        self.assertEqual(document["summary"]["count_by_status"], {"unreviewed": 0, "accepted": 1, "rejected": 1})
        accepted = float(rows[0]["volume_mm3"])
        self.assertAlmostEqual(document["summary"]["volume_mm3_by_status"]["accepted"], accepted, places=3)
        with open(paths["summary"], encoding="utf-8") as file:
            self.assertEqual(file.read().splitlines()[0],
                             "2 lesion(s): 1 accepted, 1 rejected, 0 unreviewed (0 added by the reader).")
        header = nrrd.read_header(paths["segmentation"])
        tags = {header[f"Segment{n}_Name"]: header[f"Segment{n}_Tags"] for n in range(2)}
        self.assertIn("Segmentation.Status:completed|", tags["Lesion 1"])
        self.assertIn("LesionDetect.Review.status:rejected|", tags["Lesion 2"])
        with open(paths["points"], encoding="utf-8") as file:
            controlPoints = json.load(file)["markups"][0]["controlPoints"]
        self.assertEqual([point["visibility"] for point in controlPoints], [True, False])
        self.assertTrue(controlPoints[0]["description"].endswith("; new since last scan"))

        slicer.mrmlScene.Clear(0)  # the exported set loads as results, with its review
        again, *_ = self.makeVolume()
        nodes = loadResults(folder, "Patient_MR", again)
        self.assertEqual([(row["status"], row["comment"]) for row in lesionRows(nodes.table)],
                         [("accepted", "new since last scan"), ("rejected", "")])
        self.assertEqual(shownLesions(nodes.segmentation, nodes.points),
                         ({"Lesion_1": True, "Lesion_2": False}, [True, False]))

    def test_a_failed_export_writes_nothing(self):
        volume, *_ = self.makeVolume()
        logic = self.makeLogic()
        logic.process(volume)
        blocker = os.path.join(self.temporaryFolder(), "a file")
        with open(blocker, "w", encoding="utf-8") as file:
            file.write("in the way")
        with self.assertRaisesRegex(DetectionError, "not exported"):
            logic.exportReviewedSet(volume, os.path.join(blocker, "reviewed"))
        folder = self.temporaryFolder()
        logic.setLesionStatus(volume, "L1", "rejected")
        original = slicer.util.exportNode
        slicer.util.exportNode = lambda node, *arguments, **keywords: node.IsA("vtkMRMLSegmentationNode") and (
            original(node, *arguments, **keywords))
        try:
            with self.assertRaisesRegex(DetectionError, "could not write"):
                logic.exportReviewedSet(volume, folder)
        finally:
            slicer.util.exportNode = original
        self.assertEqual(os.listdir(folder), [])

    def makeVolumeWithAMissedLesion(self, firstLesion: bool = True):
        """`makeVolume` with the second lesion too faint for the detection (and without the first one unless
        ``firstLesion``; the faint one is last in the local and world centres); also the world position of normal
        tissue far from both and the faint lesion's voxel count."""
        volume, ijkToRas, _, local, world = self.makeVolume(lesions=SPHERES if firstLesion else SPHERES[1:])
        toWorld = vtk.vtkGeneralTransform()
        slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(volume.GetParentTransformNode(), None, toWorld)
        normalTissue = toWorld.TransformPoint((ijkToRas @ np.array([27.0, 19.0, 16.0, 1.0]))[:3])
        k, j, i = np.mgrid[0:20, 0:24, 0:32]
        ci, cj, ck, radius = SPHERES[1]
        inside = (i - ci) ** 2 + (j - cj) ** 2 + (k - ck) ** 2 <= radius**2
        slicer.util.arrayFromVolume(volume)[inside] = 240
        slicer.util.arrayFromVolumeModified(volume)
        return volume, ijkToRas, local, world, normalTissue, int(inside.sum())

    def test_a_missed_lesion_is_added_at_a_point_and_nothing_on_normal_tissue(self):
        volume, ijkToRas, local, world, normalTissue, expectedVoxels = self.makeVolumeWithAMissedLesion()
        logic = self.makeLogic()
        seg, points, table = logic.process(volume)
        self.assertEqual(table.GetNumberOfRows(), 1)
        before = sceneSnapshot()
        self.assertIsNone(logic.addLesionAt(volume, normalTissue))
        self.assertEqual(sceneSnapshot(), before)
        self.assertEqual(logic.processRunner.commands[-1][3], "add-lesion")

        self.assertEqual(logic.addLesionAt(volume, world[1] + 0.8), "L2")  # a click near the faint lesion
        segmentation = seg.GetSegmentation()
        self.assertEqual([segmentation.GetNthSegment(n).GetName() for n in range(2)], ["Lesion 1", "Lesion 2"])
        self.assertEqual(points.GetNthControlPointLabel(1), "L2")
        np.testing.assert_allclose(points.GetNthControlPointPositionWorld(1), world[1], atol=1e-3)
        np.testing.assert_allclose(points.GetNthControlPointPosition(1), local[1], atol=1e-3)
        rows = lesionRows(table)
        self.assertEqual([(row["label"], row["status"], row["origin"]) for row in rows],
                         [("L1", "unreviewed", "model"), ("L2", "accepted", "reader")])
        self.assertEqual(rows[1]["voxel_count"], expectedVoxels)
        segment = segmentation.GetSegment("Lesion_2")
        labelmap = segment.GetRepresentation("Binary labelmap")
        imageToWorld = vtk.vtkMatrix4x4()
        labelmap.GetImageToWorldMatrix(imageToWorld)
        np.testing.assert_allclose(matrixArray(imageToWorld), ijkToRas, atol=1e-5)  # on the input's grid
        values = vtk.util.numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())
        self.assertEqual(int(np.count_nonzero(values == segment.GetLabelValue())), expectedVoxels)
        self.assertTrue(seg.GetDisplayNode().GetSegmentVisibility("Lesion_2"))
        self.assertEqual(logic.reviewSummary(volume)["added_by_reader"], 1)

        slicer.mrmlScene.Clear(0)  # a run that found nothing: the added lesion gives the table its column types
        volume, _, _, world, _, expectedVoxels = self.makeVolumeWithAMissedLesion(firstLesion=False)
        _, _, table = logic.process(volume)
        self.assertEqual(table.GetNumberOfRows(), 0)
        self.assertEqual(logic.addLesionAt(volume, world[-1]), "L1")
        self.assertEqual(table.GetTable().GetColumnByName("volume_mm3").GetClassName(), "vtkDoubleArray")
        self.assertEqual([(row["label"], row["voxel_count"], row["origin"]) for row in lesionRows(table)],
                         [("L1", expectedVoxels, "reader")])

    def test_an_edited_segment_is_measured_again(self):
        volume, *_ = self.makeVolume()
        logic = self.makeLogic()
        seg, points, table = logic.process(volume)
        before = lesionRows(table)
        self.assertEqual(logic.updateMeasurements(volume), [])  # nothing edited: the library's own measurements
        box = np.zeros(slicer.util.arrayFromVolume(volume).shape, np.uint8)
        box[6:10, 10:15, 16:22] = 1  # the reader redraws lesion 1 as a box of 4 × 5 × 6 voxels
        editSegment(seg, volume, "Lesion_1", box)
        self.assertEqual(logic.updateMeasurements(volume), ["L1"])
        after = lesionRows(table)
        voxelVolume = 0.7 * 1.1 * 2.5
        self.assertEqual(after[0]["voxel_count"], 120)
        self.assertAlmostEqual(after[0]["volume_mm3"], 120 * voxelVolume, places=3)
        self.assertAlmostEqual(after[0]["equivalent_diameter_mm"], (6 * 120 * voxelVolume / math.pi) ** (1 / 3), 3)
        self.assertGreater(after[0]["longest_axial_diameter_mm"], 0.0)
        self.assertEqual(after[1], before[1])
        self.assertIn(f"volume {120 * voxelVolume:.0f} mm3", points.GetNthControlPointDescription(0))


def editSegment(segmentationNode, volumeNode, segmentId: str, mask: np.ndarray) -> None:
    """Replace a segment's voxels by ``mask`` (``[k, j, i]`` on the volume's grid), as a Segment Editor effect does
    (`SetBinaryLabelmapToSegment`)."""
    labelmapNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    try:
        ijkToRas = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(ijkToRas)
        labelmapNode.SetIJKToRASMatrix(ijkToRas)
        slicer.util.updateVolumeFromArray(labelmapNode, mask)
        logic = slicer.vtkSlicerSegmentationsModuleLogic
        image = logic.CreateOrientedImageDataFromVolumeNode(labelmapNode)
        if not logic.SetBinaryLabelmapToSegment(image, segmentationNode, segmentId, logic.MODE_REPLACE,
                                                image.GetExtent()):
            raise RuntimeError(f"could not edit {segmentId}")
    finally:
        slicer.mrmlScene.RemoveNode(labelmapNode)


def shownLesions(segmentationNode, pointsNode) -> tuple[dict[str, bool], list[bool]]:
    """Each segment's visibility (by ID) and each control point's."""
    segmentation, display = segmentationNode.GetSegmentation(), segmentationNode.GetDisplayNode()
    segmentIds = [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())]
    return ({segmentId: bool(display.GetSegmentVisibility(segmentId)) for segmentId in segmentIds},
            [bool(pointsNode.GetNthControlPointVisibility(n)) for n in range(pointsNode.GetNumberOfControlPoints())])


def saveAndReloadScene(folder: str) -> None:
    """Save the scene as Slicer does (every storable node's data through its storage node, then the MRML file),
    close it and load it again from the files."""
    scene = slicer.mrmlScene
    os.makedirs(folder)
    for node in [scene.GetNthNode(n) for n in range(scene.GetNumberOfNodes())]:
        if node.IsA("vtkMRMLStorableNode") and node.GetSaveWithScene():
            if node.GetStorageNode() is None:
                node.AddDefaultStorageNode()
            storageNode = node.GetStorageNode()
            storageNode.SetFileName(os.path.join(folder, f"{node.GetID()}.{storageNode.GetDefaultWriteFileExtension()}"))
            if not storageNode.WriteData(node):
                raise OSError(f"could not save {node.GetName()}")
    sceneFile = os.path.join(folder, "scene.mrml")
    scene.SetRootDirectory(folder)
    scene.SetURL(sceneFile)
    if not scene.Commit():
        raise OSError("could not save the scene")
    scene.Clear(0)
    scene.SetURL(sceneFile)
    if not scene.Import():
        raise OSError("could not load the saved scene")


def editPoints(edit):
    """A damage that edits the control point list of ``volume.mrk.json``."""

    def damage(folder: str) -> None:
        path = os.path.join(folder, "volume.mrk.json")
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
        edit(document["markups"][0]["controlPoints"])
        with open(path, "w", encoding="utf-8") as file:
            json.dump(document, file)

    return damage


def truncate(fileName: str):
    """A damage that cuts the last 40 bytes off ``fileName`` (for a gzip-encoded label map: inside its data)."""

    def damage(folder: str) -> None:
        path = os.path.join(folder, fileName)
        with open(path, "rb") as file:
            data = file.read()
        with open(path, "wb") as file:
            file.write(data[:-40])

    return damage


def slicerSelfTestSuite() -> unittest.TestSuite:
    """These tests and those of *Compare with prior* (`compareTests`)."""
    from .compareTests import CompareWithPriorTest

    load = unittest.defaultTestLoader.loadTestsFromTestCase
    return unittest.TestSuite([*load(LesionDetectLogicTest), *load(CompareWithPriorTest)])
