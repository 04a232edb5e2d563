"""One surface mesh per lesion (``lesion_001.vtp`` or ``.stl``) in the input's physical space, LPS coordinates.

STL and VTP have no coordinate-system field of their own; 3D Slicer's model reader looks for ``SPACE=LPS``
/ ``SPACE=RAS`` in an STL header and for a ``SPACE`` string array in a VTP's field data (and assumes LPS when
neither is there). Both are written, so Slicer places the meshes exactly on the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..lesions import Lesion
from ..surface import lesion_mesh
from ..volume import Volume
from .atomic import atomic_output

SURFACE_FORMATS = ("vtp", "stl")


def surface_file_name(lesion_id: int, fmt: str) -> str:
    return f"lesion_{lesion_id:03d}.{fmt}"


def _write_vtp(path: Path, mesh) -> int:
    from vtkmodules.vtkCommonCore import vtkStringArray
    from vtkmodules.vtkCommonDataModel import vtkPolyData
    from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter

    data = vtkPolyData()
    data.ShallowCopy(mesh)
    space = vtkStringArray()
    space.SetName("SPACE")
    space.InsertNextValue("LPS")
    data.GetFieldData().AddArray(space)
    writer = vtkXMLPolyDataWriter()
    writer.SetInputData(data)
    writer.SetFileName(str(path))
    writer.SetDataModeToAppended()
    writer.SetCompressorTypeToZLib()
    return writer.Write()


def _write_stl(path: Path, mesh, lesion_id: int) -> int:
    from vtkmodules.vtkIOGeometry import vtkSTLWriter

    writer = vtkSTLWriter()
    writer.SetInputData(mesh)
    writer.SetFileName(str(path))
    writer.SetFileTypeToBinary()
    writer.SetHeader(f"LesionDetect lesion {lesion_id} SPACE=LPS")  # binary STL headers hold 80 characters
    return writer.Write()


def write_surfaces(
    folder: str | Path, volume: Volume, label_map: np.ndarray, lesions: Sequence[Lesion], fmt: str
) -> list[Path]:
    """Write a mesh of every lesion of ``label_map`` (on ``volume``'s grid) into ``folder`` (created if needed);
    returns the files in lesion order."""
    if fmt not in SURFACE_FORMATS:
        raise ValueError(f"surface format must be one of {', '.join(SURFACE_FORMATS)}, not {fmt!r}")
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot write {folder}: {error.strerror or error}") from error
    written = []
    for lesion in sorted(lesions, key=lambda lesion: lesion.id):
        mesh = lesion_mesh(label_map, volume, lesion.id, lesion.bbox_ijk_min, lesion.bbox_ijk_max)
        path = folder / surface_file_name(lesion.id, fmt)
        with atomic_output(path) as temporary:
            ok = _write_vtp(temporary, mesh) if fmt == "vtp" else _write_stl(temporary, mesh, lesion.id)
            if ok != 1 or temporary.stat().st_size == 0:
                raise OutputError(f"cannot write {path}: the VTK {fmt.upper()} writer failed")
        written.append(path)
    return written
