"""`writers.surfaces`: one surface mesh file per lesion (VTP or STL), in LPS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from writer_inputs import hidden

from LesionDetectLib import writers
from LesionDetectLib.lesions import Lesion
from LesionDetectLib.volume import Volume, apply_affine


def _read_mesh(path: Path):
    from vtkmodules.vtkIOGeometry import vtkSTLReader
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    reader = vtkXMLPolyDataReader() if path.suffix == ".vtp" else vtkSTLReader()
    reader.SetFileName(str(path))
    reader.Update()
    return reader, reader.GetOutput()


def physical_box(volume: Volume, lesion: Lesion) -> tuple[np.ndarray, np.ndarray]:
    """LPS axis-aligned box around the lesion's voxels (their outer faces, ±0.5 voxel)."""
    low, high = np.array(lesion.bbox_ijk_min) - 0.5, np.array(lesion.bbox_ijk_max) + 0.5
    corners = np.array([[a, b, c] for a in (low[0], high[0]) for b in (low[1], high[1]) for c in (low[2], high[2])])
    lps = apply_affine(volume.ijk_to_lps(), corners)
    return lps.min(axis=0), lps.max(axis=0)


@pytest.mark.parametrize("fmt", ["vtp", "stl"])
def test_surfaces_lie_inside_each_lesion_box_in_lps(tmp_path, result, fmt):
    files = writers.write_surfaces(tmp_path / "surfaces", result.volume, result.label_map, result.lesions, fmt)
    assert [f.name for f in files] == [f"lesion_001.{fmt}", f"lesion_002.{fmt}"]
    for path, lesion in zip(files, result.lesions):
        reader, mesh = _read_mesh(path)
        assert mesh.GetNumberOfPoints() > 20
        if fmt == "vtp":
            assert mesh.GetFieldData().GetAbstractArray("SPACE").GetValue(0) == "LPS"
        else:
            assert "SPACE=LPS" in reader.GetHeader()
        low, high = physical_box(result.volume, lesion)
        bounds = np.array(mesh.GetBounds()).reshape(3, 2)
        assert np.all(bounds[:, 0] >= low - 0.05) and np.all(bounds[:, 1] <= high + 0.05)
        centre = bounds.mean(axis=1)
        assert np.linalg.norm(centre - np.array(lesion.centroid_lps)) < 1.0
    assert hidden(tmp_path) == []
