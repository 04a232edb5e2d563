"""Lesion measurements kept in step with the segments: after a segment is edited (Segment Editor), each lesion's
voxel count, volume and diameters in the table are measured again from its segment, as the library measures them
(`LesionDetectLib.lesions`): equivalent-sphere diameter from the volume, longest axial diameter on the slices."""

from __future__ import annotations

import math

import numpy as np
import slicer
import vtk

from LesionDetectLib.lesions import longest_axial_diameter
from LesionDetectLib.volume import LPS_TO_RAS, Volume

from .results import DetectionNodes, lesionRows
from .review import segmentsLabelmapNode, showReview

MEASURED_COLUMNS = ("voxel_count", "volume_mm3", "equivalent_diameter_mm", "longest_axial_diameter_mm")


def gridOf(volumeNode, array: np.ndarray) -> Volume:
    """``array`` on ``volumeNode``'s grid (its own IJK→RAS, as in the files) as a library `Volume` (LPS)."""
    ijkToRas = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(ijkToRas)
    rasMatrix = np.array([[ijkToRas.GetElement(r, c) for c in range(4)] for r in range(3)])
    matrix = LPS_TO_RAS @ rasMatrix  # the flip is its own inverse: RAS → LPS
    spacing = tuple(float(value) for value in volumeNode.GetSpacing())
    return Volume(array, spacing, tuple(matrix[:, 3]), matrix[:, :3] / np.array(spacing))


def measure(mask: np.ndarray, grid: Volume) -> dict[str, float]:
    """The `MEASURED_COLUMNS` of one lesion's ``[k, j, i]`` mask."""
    count = int(np.count_nonzero(mask))
    volume = count * grid.voxel_volume_mm3
    if count == 0:
        return {"voxel_count": 0, "volume_mm3": 0.0, "equivalent_diameter_mm": 0.0, "longest_axial_diameter_mm": 0.0}
    k, j, i = (np.flatnonzero(mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    crop = mask[k[0]:k[-1] + 1, j[0]:j[-1] + 1, i[0]:i[-1] + 1]
    return {"voxel_count": count, "volume_mm3": round(volume, 4),
            "equivalent_diameter_mm": round((6.0 * volume / math.pi) ** (1.0 / 3.0), 4),
            "longest_axial_diameter_mm": round(longest_axial_diameter(crop, (i[0], j[0], k[0]), grid), 4)}


def updateMeasurements(nodes: DetectionNodes, volumeNode) -> list[str]:
    """Measure every lesion again from its segment; the labels whose measurements changed."""
    rows = lesionRows(nodes.table)
    if not rows:
        return []
    with segmentsLabelmapNode(nodes, volumeNode, [row["name"] for row in rows]) as labelmapNode:
        labels = slicer.util.arrayFromVolume(labelmapNode).copy()
    grid = gridOf(volumeNode, labels)
    table = nodes.table.GetTable()
    changed = []
    for index, row in enumerate(rows):
        measured = measure(labels == index + 1, grid)
        if any(not math.isclose(float(row[name]), value, abs_tol=1e-4) for name, value in measured.items()):
            changed.append(row["label"])
            for name, value in measured.items():
                table.GetColumnByName(name).SetValue(index, value)
    if changed:
        table.Modified()
        nodes.table.Modified()
        showReview(nodes)
    return changed
