"""Lesion surface meshes in physical LPS coordinates, and the shape measures taken from them.

A lesion is cropped to its bounding box plus one voxel of background on every side (so the surface is
closed even where the lesion touches the volume's edge), contoured with `vtkDiscreteFlyingEdges3D` in voxel
index space, mapped through the volume's IJK→LPS matrix, smoothed with a windowed-sinc filter (as Slicer's
labelmap→closed-surface conversion does) and given outward normals. Smoothing shrinks lesions of a few voxels
towards a point, so it is kept only when the enclosed volume stays within `MAX_SMOOTHING_SHRINK` of the
unsmoothed mesh's. vtk is imported inside the functions.
"""

from __future__ import annotations

import math

import numpy as np

from .volume import Volume

SMOOTHING_ITERATIONS = 20
SMOOTHING_PASS_BAND = 0.03  # Slicer's smoothing factor s gives 10^(-4s): 0.03 ≈ s = 0.38 (Slicer's default 0.5)
MAX_SMOOTHING_SHRINK = 0.03


def _bounding_box(label_map: np.ndarray, lesion_id: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    k, j, i = np.nonzero(label_map == lesion_id)
    if k.size == 0:
        raise ValueError(f"lesion {lesion_id} has no voxels in the label map")
    return (int(i.min()), int(j.min()), int(k.min())), (int(i.max()), int(j.max()), int(k.max()))


def _signed_volume(mesh) -> float:
    """Signed enclosed volume of a triangle mesh: positive when its triangles turn counter-clockwise seen from outside."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    points = vtk_to_numpy(mesh.GetPoints().GetData()).astype(np.float64)
    triangles = vtk_to_numpy(mesh.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = (points[triangles[:, n]].T for n in range(3))
    return float((x0 * (y1 * z2 - z1 * y2) + y0 * (z1 * x2 - x1 * z2) + z0 * (x1 * y2 - y1 * x2)).sum() / 6.0)


def lesion_mesh(
    label_map: np.ndarray,
    volume: Volume,
    lesion_id: int,
    bbox_min: tuple[int, int, int] | None = None,
    bbox_max: tuple[int, int, int] | None = None,
):
    """A closed triangle mesh (``vtkPolyData``, LPS mm, outward normals) of the voxels labelled ``lesion_id``.

    ``label_map`` is ``[k, j, i]`` on ``volume``'s grid; ``bbox_min``/``bbox_max`` are the lesion's inclusive
    ``(i, j, k)`` bounds (found from the label map when not given).
    """
    from vtkmodules.vtkFiltersCore import vtkPolyDataNormals

    mesh, outward = _smoothed_surface(label_map, volume, lesion_id, bbox_min, bbox_max)
    # A mirroring IJK→LPS matrix (negative determinant) turns the triangles inside out: fix by the sign of
    # the enclosed volume, whatever the contour filter's own convention is.
    normals = vtkPolyDataNormals()
    normals.SetInputData(mesh)
    normals.SplittingOff()
    normals.ConsistencyOn()
    normals.AutoOrientNormalsOff()
    normals.SetFlipNormals(not outward)  # also reverses the triangles' order
    normals.ComputePointNormalsOn()
    normals.ComputeCellNormalsOff()
    normals.Update()
    return normals.GetOutput()


def lesion_surface_measures(label_map: np.ndarray, volume: Volume, lesion_id: int, bbox_min: tuple[int, int, int],
                            bbox_max: tuple[int, int, int], volume_mm3: float) -> tuple[float, float]:
    """`mesh_measures` of the lesion's `lesion_mesh`, without its normals (which change neither area nor volume)."""
    return mesh_measures(_smoothed_surface(label_map, volume, lesion_id, bbox_min, bbox_max)[0], volume_mm3)


def _smoothed_surface(label_map: np.ndarray, volume: Volume, lesion_id: int, bbox_min, bbox_max):
    """`lesion_mesh` before its normals: (closed mesh, whether its triangles already face outward)."""
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import vtkTriangleFilter, vtkWindowedSincPolyDataFilter
    from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D

    if label_map.shape != volume.array.shape:
        raise ValueError(f"label map shape {label_map.shape} differs from the volume's {volume.array.shape}")
    if bbox_min is None or bbox_max is None:
        bbox_min, bbox_max = _bounding_box(label_map, lesion_id)
    (i0, j0, k0), (i1, j1, k1) = bbox_min, bbox_max
    mask = (label_map[k0 : k1 + 1, j0 : j1 + 1, i0 : i1 + 1] == lesion_id).astype(np.uint8)
    if not mask.any():
        raise ValueError(f"lesion {lesion_id} has no voxels inside its bounding box {bbox_min}–{bbox_max}")
    mask = np.pad(mask, 1)  # one voxel of background all round: the surface is always closed

    image = vtkImageData()
    image.SetDimensions(mask.shape[2], mask.shape[1], mask.shape[0])  # VTK wants (x=i, y=j, z=k)
    image.GetPointData().SetScalars(numpy_to_vtk(mask.ravel(), deep=True))
    contour = vtkDiscreteFlyingEdges3D()
    contour.SetInputData(image)
    contour.SetValue(0, 1)
    contour.ComputeNormalsOff()
    contour.ComputeGradientsOff()
    contour.ComputeScalarsOff()
    triangles = vtkTriangleFilter()
    triangles.SetInputConnection(contour.GetOutputPort())
    triangles.Update()
    mesh = triangles.GetOutput()

    # Crop index (x, y, z) → volume index (i, j, k) → LPS mm.
    ijk = vtk_to_numpy(mesh.GetPoints().GetData()).astype(np.float64) + np.array([i0 - 1, j0 - 1, k0 - 1])
    matrix = volume.ijk_to_lps()
    lps = ijk @ matrix[:3, :3].T + matrix[:3, 3]
    points = vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(lps), deep=True))
    mesh.SetPoints(points)

    smoother = vtkWindowedSincPolyDataFilter()
    smoother.SetInputData(mesh)
    smoother.SetNumberOfIterations(SMOOTHING_ITERATIONS)
    smoother.SetPassBand(SMOOTHING_PASS_BAND)
    smoother.BoundarySmoothingOff()
    smoother.FeatureEdgeSmoothingOff()
    smoother.NonManifoldSmoothingOn()
    smoother.NormalizeCoordinatesOn()
    smoother.Update()
    raw_volume, smoothed_volume = _signed_volume(mesh), _signed_volume(smoother.GetOutput())
    keep = abs(smoothed_volume) >= (1.0 - MAX_SMOOTHING_SHRINK) * abs(raw_volume)
    if keep:
        mesh = smoother.GetOutput()

    return mesh, (smoothed_volume if keep else raw_volume) >= 0


def mesh_measures(polydata, volume_mm3: float) -> tuple[float, float]:
    """(surface area in mm², sphericity) of a closed mesh; sphericity = π^⅓·(6V)^⅔ / A with V = ``volume_mm3``.

    V is the lesion's voxel volume (not the mesh's), so that sphericity uses the same volume as the table. For
    lesions of a few voxels the mesh cuts the voxels' corners (its area is that of a smaller body) and the
    formula exceeds 1, which no shape can: it is capped at 1.
    """
    from vtkmodules.vtkFiltersCore import vtkMassProperties

    properties = vtkMassProperties()
    properties.SetInputData(polydata)
    properties.Update()
    area = float(properties.GetSurfaceArea())
    if not area > 0:
        raise ValueError("the mesh has no surface")
    sphericity = math.pi ** (1.0 / 3.0) * (6.0 * volume_mm3) ** (2.0 / 3.0) / area
    return area, min(1.0, float(sphericity))
