"""Logic tests of the LesionDetect module on real MRML: run by pytest (slicer-core) and by the module's self-test
inside Slicer (Reload & Test), with the real process runner and a stand-in model (`intensityModel`).

The synthetic volume is oblique, flipped and anisotropic with a non-zero origin, under a rotated parent transform
and inside a patient's study, with two bright spheres (the lesions).
"""

from __future__ import annotations

import collections
import json
import math
import os
import unittest

import numpy as np
import slicer
import vtk

from .errors import DetectionError, DetectionFailedError
from .logic import LesionDetectLogic
from .results import findResults
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
    return unittest.defaultTestLoader.loadTestsFromTestCase(LesionDetectLogicTest)
