"""A box detector's results in Slicer (real MRML, Slicer's own markups reader): one ROI node per lesion that
overlays its box and its segment, under the volume's parent transform, replaced by the next run."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from box_detections import boxes_on, make_volume

from LesionDetectLib import writers
from LesionDetectLib.detector_boxes import lesions_from_boxes

pytest_plugins = ("real_slicer",)  # the `slicer` fixture
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def roiGeometry(node) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre, size, axes as columns) of the ROI in its node (local RAS) coordinates, as Slicer holds it."""
    centre = np.zeros(3)
    node.GetCenter(centre)
    matrix = node.GetObjectToNodeMatrix()
    axes = np.array([[matrix.GetElement(row, column) for column in range(3)] for row in range(3)])
    return centre, np.array(node.GetSize(), float), axes


def roiCornersRas(node) -> np.ndarray:
    centre, size, axes = roiGeometry(node)
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    return centre + (signs * size / 2) @ axes.T


def test_each_box_is_an_roi_that_overlays_its_lesion_under_the_volumes_transform(slicer, tmp_path):
    results = importlib.import_module("LesionDetectModuleLib.results")
    volume = make_volume()
    boxes = boxes_on(volume)
    lesions, label_map = lesions_from_boxes(boxes, volume, threshold=0.5, measure_surfaces=False)
    writers.write_all(tmp_path / "run1", "chest", volume, label_map, lesions, model_name="detector", threshold=0.5,
                      settings={}, warnings=[])
    ijkToRas = LPS_TO_RAS @ volume.ijk_to_lps()[:3]
    volumeNode = slicer.util.addVolumeFromArray(volume.array, np.vstack([ijkToRas, [0, 0, 0, 1]]), name="Chest")
    transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = (5.0, -3.0, 12.0)
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shift))
    volumeNode.SetAndObserveTransformNodeID(transform.GetID())

    results.loadResults(str(tmp_path / "run1"), "chest", volumeNode)
    rois = results.boxNodes(volumeNode)
    assert [roi.GetName() for roi in rois] == ["Chest L1 box", "Chest L2 box"]
    for roi, lesion in zip(rois, lesions):
        assert roi.GetTransformNodeID() == transform.GetID()
        expected = lesion.detector_box.corners_lps() @ LPS_TO_RAS
        found = roiCornersRas(roi)
        assert np.allclose(sorted(map(tuple, found)), sorted(map(tuple, expected)), atol=1e-4)
        k, j, i = np.nonzero(label_map == lesion.id)  # every voxel of its segment lies in the ROI
        ras = np.stack([i, j, k, np.ones_like(i)], axis=1).astype(float) @ np.vstack([ijkToRas, [0, 0, 0, 1]]).T
        centre, size, axes = roiGeometry(roi)
        assert np.all(np.abs((ras[:, :3] - centre) @ axes) <= size / 2 + 1e-4)

    plain = [lesion.with_detector_box(None) for lesion in lesions]  # a segmentation model's run replaces them
    writers.write_all(tmp_path / "run2", "chest", volume, label_map, plain, model_name="seg", threshold=0.5,
                      settings={}, warnings=[])
    results.loadResults(str(tmp_path / "run2"), "chest", volumeNode)
    assert results.boxNodes(volumeNode) == []
    assert slicer.util.getNodesByClass("vtkMRMLMarkupsROINode") == []


def test_a_boxes_file_that_disagrees_with_the_table_changes_nothing(slicer, tmp_path):
    results = importlib.import_module("LesionDetectModuleLib.results")
    errors = importlib.import_module("LesionDetectModuleLib.errors")
    volume = make_volume()
    lesions, label_map = lesions_from_boxes(boxes_on(volume), volume, threshold=0.5, measure_surfaces=False)
    paths = writers.write_all(tmp_path, "chest", volume, label_map, lesions, model_name="detector", threshold=0.5,
                              settings={}, warnings=[])
    document = json.loads(paths["boxes"].read_text())
    document["markups"] = document["markups"][:1]
    paths["boxes"].write_text(json.dumps(document))
    volumeNode = slicer.util.addVolumeFromArray(volume.array, np.eye(4), name="Chest")
    before = slicer.mrmlScene.GetNumberOfNodes()
    with pytest.raises(errors.ResultsError, match="1 box"):
        results.loadResults(str(tmp_path), "chest", volumeNode)
    assert slicer.mrmlScene.GetNumberOfNodes() == before
