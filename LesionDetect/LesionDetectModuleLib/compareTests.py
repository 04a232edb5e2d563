"""Logic tests of *Compare with prior* on real MRML (pytest with slicer-core, and Slicer's self-test): the real
``compare`` command (registration, matching, outputs) on the stand-in model's lesions (`testRunners`).

The follow-up pair: one textured head, the current scan on an oblique, flipped, anisotropic grid with a non-zero
origin under a rotated parent transform, inside a patient's study; the prior scan holds the same voxels without
the new lesion, on a grid moved by a known rigid motion (4° and a few mm, in RAS), so the registration's answer is
known: the prior's transform to parent must be that motion's inverse.
"""

from __future__ import annotations

import os
import unittest

import numpy as np
import slicer
import vtk

from LesionDetectLib.compare.output import COLORS

from .comparison import TRANSFORM_FILE, changeSummary
from .errors import ComparisonRefusedError, DetectionError, DetectionFailedError
from .logicTests import matrixArray, nodeClassCounts, rotation, sceneSnapshot
from .results import findResults, lesionRows
from .testRunners import IntensityModelRunner

SHAPE = (30, 36, 40)  # k, j, i
SPACING = np.array([1.3, 1.1, 1.9])
STABLE = ((14.0, 12.0, 24.0, 4.5), (30.0, 26.0, 30.0, 3.5))  # centre in the grid (i, j, k mm) and radius, mm
NEW = (34.0, 14.0, 18.0, 4.0)


def headVoxels(lesions, frequencies=(0.35, 0.3, 0.28), semiAxes=(22.0, 17.0, 24.0)) -> np.ndarray:
    """``[k, j, i]`` voxels: a smoothly textured ellipsoid (a skull-stripped head) with bright spherical lesions."""
    k, j, i = np.mgrid[0:SHAPE[0], 0:SHAPE[1], 0:SHAPE[2]].astype(float)
    x, y, z = i * SPACING[0], j * SPACING[1], k * SPACING[2]
    centre = (np.array(SHAPE[::-1]) - 1) * SPACING / 2
    radius = np.sqrt(sum(((axis - c) / semi) ** 2 for axis, c, semi in zip((x, y, z), centre, semiAxes)))
    fx, fy, fz = frequencies
    tissue = 100 + 25 * np.sin(fx * x + 0.4) * np.cos(fy * y) + 15 * np.sin(fz * z + 0.1 * x)
    voxels = np.where(radius <= 1, tissue, 0.0)
    for cx, cy, cz, r in lesions:
        voxels[(x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= r**2] = 400
    return voxels.astype(np.int16)


def currentIjkToRas() -> np.ndarray:
    ijkToRas = np.eye(4)
    ijkToRas[:3, :3] = rotation((1, 2, 3), 35) @ np.diag([1, 1, -1]) @ np.diag(SPACING)
    ijkToRas[:3, 3] = (-40.5, 12.25, 80.0)
    return ijkToRas


def priorMotion() -> np.ndarray:
    """The patient's rigid motion between the scans: current local RAS → prior local RAS (about the head's centre)."""
    centre = (currentIjkToRas() @ np.array([20.0, 18.0, 15.0, 1.0]))[:3]
    motion = np.eye(4)
    motion[:3, :3] = rotation((0, 1, 1), 4.0)
    motion[:3, 3] = centre - motion[:3, :3] @ centre + np.array([3.0, -2.0, 1.5])
    return motion


def localCentre(lesion, ijkToRas: np.ndarray) -> np.ndarray:
    return (ijkToRas @ np.append(np.array(lesion[:3]) / SPACING, 1.0))[:3]


def worldPoint(node, localPoint) -> np.ndarray:
    """``localPoint`` of ``node`` in world RAS, through its parent transforms."""
    toWorld = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(node.GetParentTransformNode(), None, toWorld)
    return np.array(toWorld.TransformPoint([float(value) for value in localPoint]))


class CompareWithPriorTest(unittest.TestCase):
    """Each test starts from an empty scene."""

    pythonExecutable: str | None = None
    """The comparison process's Python; None: ``PythonSlicer`` (inside Slicer)."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear(0)

    def makeLogic(self, damage=None):
        from .logic import LesionDetectLogic

        return LesionDetectLogic(processRunner=IntensityModelRunner(damage=damage), findModule=lambda name: True,
                                 pythonExecutable=self.pythonExecutable)

    def makeFollowUp(self):
        """The current volume (under a rotated parent transform, in a study) and the prior volume (under an old
        registration); returns both and the current's study item."""
        current = slicer.util.addVolumeFromArray(headVoxels((*STABLE, NEW)), currentIjkToRas(), name="Follow-up MR")
        parent = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "patient position")
        toWorld = np.eye(4)
        toWorld[:3, :3], toWorld[:3, 3] = rotation((0, 0, 1), 30), (5.0, -3.0, 2.0)
        parent.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(toWorld))
        current.SetAndObserveTransformNodeID(parent.GetID())
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        study = shNode.CreateStudyItem(shNode.CreateSubjectItem(shNode.GetSceneItemID(), "Patient"), "Study")
        shNode.SetItemParent(shNode.GetItemByDataNode(current), study)
        prior = slicer.util.addVolumeFromArray(headVoxels(STABLE), priorMotion() @ currentIjkToRas(), name="Prior MR")
        old = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "old registration")
        prior.SetAndObserveTransformNodeID(old.GetID())
        return current, prior, study

    def test_new_lesion_found_and_the_prior_shown_aligned_under_its_transform(self):
        current, prior, study = self.makeFollowUp()
        logic = self.makeLogic()
        priorResults = logic.process(prior)
        (seg, points, table), transform, summary = logic.compareWithPrior(current, prior)
        self.assertEqual(list(summary["counts"].items()), [("new", 1), ("enlarging", 0), ("stable", 2),
                                                           ("shrinking", 0), ("resolved", 0), ("outside", 0)])
        self.assertEqual(changeSummary(table), summary)
        self.assertEqual(findResults(current), (seg, points, table))
        ijkToRas = currentIjkToRas()
        rows = lesionRows(table)
        changes = {}
        for row in rows:  # each lesion's change, by where its point is
            position = points.GetNthControlPointPosition(int(row["label"][1:]) - 1)
            nearest = min((*STABLE, NEW), key=lambda lesion: np.linalg.norm(localCentre(lesion, ijkToRas) - position))
            changes[nearest] = row["change"]
        self.assertEqual(changes, {STABLE[0]: "stable", STABLE[1]: "stable", NEW: "new"})

        segmentation, shown = seg.GetSegmentation(), points.GetDisplayNode()
        for n, row in enumerate(rows):
            color = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(row["name"])).GetColor()
            isNew = row["change"] == "new"
            self.assertEqual(np.allclose(color, COLORS["new"]), isNew, row["label"])
            self.assertEqual(bool(points.GetNthControlPointSelected(n)), not isNew, row["label"])  # unselected: cyan
        np.testing.assert_allclose(shown.GetColor(), COLORS["new"])
        self.assertFalse(np.allclose(shown.GetSelectedColor(), COLORS["new"]))

        self.assertEqual(transform.GetClassName(), "vtkMRMLLinearTransformNode")
        self.assertEqual(prior.GetTransformNodeID(), transform.GetID())
        self.assertEqual([node.GetTransformNodeID() for node in priorResults[:2]], [transform.GetID()] * 2)
        self.assertEqual(findResults(prior), priorResults)  # the prior's own results move with it, unchanged
        self.assertEqual(transform.GetTransformNodeID(), current.GetTransformNodeID())
        self.assertIsNone(transform.GetStorageNode())
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        self.assertEqual(shNode.GetItemParent(shNode.GetItemByDataNode(transform)), study)
        toParent = vtk.vtkMatrix4x4()
        transform.GetMatrixTransformToParent(toParent)
        expected = np.linalg.inv(priorMotion())  # RAS; read as LPS, the signs of x and y would be wrong
        np.testing.assert_allclose(matrixArray(toParent)[:3, :3], expected[:3, :3], atol=0.01)
        np.testing.assert_allclose(matrixArray(toParent)[:3, 3], expected[:3, 3], atol=1.0)
        for lesion in STABLE:  # the prior's lesions lie on the current's, in the world, within 1 mm
            priorWorld = worldPoint(prior, localCentre(lesion, priorMotion() @ ijkToRas))
            currentWorld = worldPoint(current, localCentre(lesion, ijkToRas))
            self.assertLess(np.linalg.norm(priorWorld - currentWorld), 1.0)
        command = logic.processRunner.commands[-1]
        self.assertEqual(command[command.index("compare") + 1:command.index("compare") + 3],
                         [os.path.join(os.path.dirname(command[command.index("-o") + 1]), name)
                          for name in ("prior.nrrd", "current.nrrd")])
        self.assertEqual(command[command.index("--progress") + 1], "jsonl")

        counts = nodeClassCounts()  # again: the results and the transform are replaced, not added
        _, again, _ = logic.compareWithPrior(current, prior)
        self.assertEqual(nodeClassCounts(), counts)
        self.assertIsNone(transform.GetScene())
        self.assertEqual(prior.GetTransformNodeID(), again.GetID())

    def test_refused_or_damaged_comparison_changes_nothing(self):
        current, prior, _ = self.makeFollowUp()
        other = slicer.util.addVolumeFromArray(headVoxels((NEW,), (0.9, 0.15, 0.6), (12.0, 19.0, 10.0)),
                                               currentIjkToRas(), name="Other MR")
        logic = self.makeLogic()
        previous = logic.process(current)
        before = sceneSnapshot()
        with self.assertRaisesRegex(ComparisonRefusedError, "do not align"):
            logic.compareWithPrior(current, other)
        self.assertEqual(sceneSnapshot(), before)
        self.assertEqual(findResults(current), previous)
        for damage, message in ((lambda folder: os.remove(os.path.join(folder, TRANSFORM_FILE)), "Failed to load"),
                                (lambda folder: os.remove(os.path.join(folder, "change.json")), "change.json")):
            with self.subTest(message), self.assertRaisesRegex(DetectionFailedError, message):
                self.makeLogic(damage=damage).compareWithPrior(current, prior)
            self.assertEqual(sceneSnapshot(), before)
        started = len(logic.processRunner.commands)
        for priorNode, message in ((None, "Select the prior scan"), (current, "other than the current")):
            with self.subTest(message), self.assertRaisesRegex(DetectionError, message):
                logic.compareWithPrior(current, priorNode)
        self.assertEqual(len(logic.processRunner.commands), started)  # refused before anything ran
