"""Lesion surface meshes: physical LPS placement, closedness, orientation, area and sphericity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import oblique_direction

from LesionDetectLib.surface import lesion_mesh, lesion_surface_measures, mesh_measures
from LesionDetectLib.volume import Volume

SPACING = (0.8, 0.9, 1.5)
ORIGIN = (12.5, -40.25, 88.0)
SHAPE_KJI = (24, 36, 40)
RADIUS = 10.0


def rotation() -> np.ndarray:
    """25° about an oblique axis."""
    axis = np.array([2.0, -1.0, 2.0]) / 3.0
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = np.deg2rad(25.0)
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


DIRECTIONS = {
    "rotation": rotation(),
    "oblique_flips": oblique_direction(),
    "mirrored": rotation() @ np.diag([1.0, 1.0, -1.0]),  # negative determinant: triangles must be re-oriented
}


def ball(direction: np.ndarray, centre_ijk=(20.3, 17.6, 11.2), radius=RADIUS):
    """A voxelised ball of ``radius`` mm (label 1) and its centre in LPS."""
    volume = Volume(np.zeros(SHAPE_KJI, np.float32), SPACING, ORIGIN, direction)
    matrix = volume.ijk_to_lps()
    kk, jj, ii = np.indices(SHAPE_KJI)
    lps = np.stack([ii, jj, kk], axis=-1) @ matrix[:3, :3].T + matrix[:3, 3]
    centre = matrix[:3, :3] @ np.array(centre_ijk) + matrix[:3, 3]
    label_map = (np.linalg.norm(lps - centre, axis=-1) <= radius).astype(np.uint16)
    return volume, label_map, centre


def arrays(mesh):
    from vtkmodules.util.numpy_support import vtk_to_numpy

    points = vtk_to_numpy(mesh.GetPoints().GetData()).astype(float)
    triangles = vtk_to_numpy(mesh.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    normals = vtk_to_numpy(mesh.GetPointData().GetNormals())
    return points, triangles, normals


def boundary_edge_count(mesh) -> int:
    from vtkmodules.vtkFiltersCore import vtkFeatureEdges

    edges = vtkFeatureEdges()
    edges.SetInputData(mesh)
    edges.BoundaryEdgesOn()
    edges.NonManifoldEdgesOn()
    edges.FeatureEdgesOff()
    edges.ManifoldEdgesOff()
    edges.Update()
    return edges.GetOutput().GetNumberOfCells()


@pytest.mark.parametrize("name", DIRECTIONS)
def test_sphere_mesh_is_in_lps_closed_outward_and_measured(name):
    volume, label_map, centre = ball(DIRECTIONS[name])
    mesh = lesion_mesh(label_map, volume, 1)
    points, triangles, normals = arrays(mesh)
    assert np.linalg.norm(points.mean(axis=0) - centre) < 1.0
    distances = np.linalg.norm(points - centre, axis=1)
    assert np.all(np.abs(distances - RADIUS) < max(SPACING))
    assert boundary_edge_count(mesh) == 0
    radial = (points - centre) / distances[:, None]
    assert np.mean(np.einsum("ij,ij->i", normals, radial) > 0) > 0.99  # normals point outwards
    p0, p1, p2 = (points[triangles[:, n]] for n in range(3))
    assert np.einsum("ij,ij->i", p0, np.cross(p1, p2)).sum() / 6.0 > 0  # counter-clockwise seen from outside

    voxel_volume = float(label_map.sum()) * volume.voxel_volume_mm3
    area, sphericity = mesh_measures(mesh, voxel_volume)
    assert area == pytest.approx(4 * math.pi * RADIUS**2, rel=0.10)
    assert 0.8 <= sphericity <= 1.05


def test_given_bounding_box_gives_the_same_mesh_and_other_labels_are_ignored():
    volume, label_map, _ = ball(DIRECTIONS["rotation"], radius=6.0)
    label_map[0:3, 0:3, 0:3] = 2  # another lesion, touching the volume's corner
    k, j, i = np.nonzero(label_map == 1)
    bbox_min, bbox_max = (i.min(), j.min(), k.min()), (i.max(), j.max(), k.max())
    found, given = arrays(lesion_mesh(label_map, volume, 1))[0], arrays(lesion_mesh(label_map, volume, 1, bbox_min, bbox_max))[0]
    assert np.array_equal(found, given)
    corner = lesion_mesh(label_map, volume, 2)  # at the edge of the volume: still closed
    assert boundary_edge_count(corner) == 0
    assert mesh_measures(corner, 27 * volume.voxel_volume_mm3)[0] > 0


def test_missing_lesion_is_an_error():
    volume, label_map, _ = ball(DIRECTIONS["rotation"], radius=4.0)
    with pytest.raises(ValueError, match="lesion 5"):
        lesion_mesh(label_map, volume, 5)


@pytest.mark.parametrize("voxels", [[(2, 2, 2)], [(2, 2, 2), (3, 3, 3)], [(k, j, i) for k in (1, 2) for j in (1, 2) for i in (1, 2)]])
def test_tiny_lesions_keep_their_size(voxels):
    """Smoothing would shrink a few-voxel mesh to a point: the mesh must keep the lesion's size and stay in its box."""
    volume = Volume(np.zeros((6, 6, 6), np.float32), SPACING, ORIGIN, DIRECTIONS["mirrored"])
    label_map = np.zeros((6, 6, 6), np.uint16)
    for kji in voxels:
        label_map[kji] = 3
    mesh = lesion_mesh(label_map, volume, 3)
    points = arrays(mesh)[0]
    k, j, i = np.nonzero(label_map)
    corners = np.array([[a, b, c] for a in (i.min() - 0.5, i.max() + 0.5) for b in (j.min() - 0.5, j.max() + 0.5)
                        for c in (k.min() - 0.5, k.max() + 0.5)])
    box = corners @ volume.ijk_to_lps()[:3, :3].T + volume.ijk_to_lps()[:3, 3]
    assert np.all(points >= box.min(axis=0) - 1e-9) and np.all(points <= box.max(axis=0) + 1e-9)
    area, sphericity = mesh_measures(mesh, len(voxels) * volume.voxel_volume_mm3)
    voxel_area = 2 * (SPACING[0] * SPACING[1] + SPACING[1] * SPACING[2] + SPACING[0] * SPACING[2])
    assert area > 0.25 * voxel_area * len(voxels) ** (2 / 3)
    assert 0 < sphericity <= 1.0


@pytest.mark.parametrize("name", DIRECTIONS)
def test_table_measures_without_normals_equal_those_of_the_written_mesh(name):
    volume, label_map, _ = ball(DIRECTIONS[name])
    k, j, i = np.nonzero(label_map == 1)
    bbox_min, bbox_max = (i.min(), j.min(), k.min()), (i.max(), j.max(), k.max())
    voxel_volume = float(label_map.sum()) * volume.voxel_volume_mm3
    expected = mesh_measures(lesion_mesh(label_map, volume, 1), voxel_volume)
    measured = lesion_surface_measures(label_map, volume, 1, bbox_min, bbox_max, voxel_volume)
    assert measured == pytest.approx(expected, rel=1e-9)
    assert 4 * math.pi * RADIUS**2 * 0.9 < measured[0] < 4 * math.pi * RADIUS**2 * 1.1
