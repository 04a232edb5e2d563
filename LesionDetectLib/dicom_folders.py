"""Reading a DICOM series folder: one series chosen by its UID, with evenly spaced slices of one orientation, size
and pixel spacing (ITK only warns about a missing slice, and stacks any slices it is given)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputImageError
from .image_files import check_folder
from .native_reads import check_fits_in_memory, native_output_silenced


def dicom_series(folder: Path) -> dict[str, list[str]]:
    """The DICOM series in ``folder``: series instance UID → sorted file names.

    Refuses (`InputImageError`) a folder that cannot be listed or holds a FIFO or device: GDCM opens every file.
    """
    import SimpleITK as sitk

    check_folder(folder)
    reader = sitk.ImageSeriesReader
    with native_output_silenced():
        return {uid: list(reader.GetGDCMSeriesFileNames(str(folder), uid)) for uid in reader.GetGDCMSeriesIDs(str(folder))}


def read_dicom_folder(folder: Path, series_uid: str | None):
    import SimpleITK as sitk

    series = dicom_series(folder)
    if not series:
        raise InputImageError(f"{folder}: folder holds no DICOM series (and is not an image file)")
    if series_uid is None:
        if len(series) > 1:
            listing = ", ".join(f"{uid} ({len(files)} files)" for uid, files in series.items())
            raise InputImageError(f"{folder}: holds {len(series)} DICOM series; choose one with --series-uid: {listing}")
        series_uid = next(iter(series))
    if series_uid not in series:
        raise InputImageError(f"{folder}: no DICOM series with UID {series_uid}")
    files = series[series_uid]
    first = sitk.ImageFileReader()
    first.SetFileName(files[0])
    first.ReadImageInformation()
    check_fits_in_memory(first, folder, slices=len(files))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    image = reader.Execute()
    _check_slices_agree(reader, len(files), folder, series_uid)
    _check_slice_positions(reader, image, len(files), folder)
    return image


SLICE_ATTRIBUTES = {"0020|0037": "orientation", "0028|0030": "pixel spacing", "0028|0010": "rows",
                    "0028|0011": "columns"}  # must be the same in every slice of a series


def _check_slices_agree(reader, count: int, folder: Path, series_uid: str) -> None:
    """Refuse a series whose slices differ in orientation, pixel spacing or size: ITK would stack them as one grid."""
    for key, attribute in SLICE_ATTRIBUTES.items():
        values = [reader.GetMetaData(index, key).strip() if reader.HasMetaDataKey(index, key) else "none"
                  for index in range(count)]
        distinct = list(dict.fromkeys(values))
        if len(distinct) > 1 and not _same_numbers(distinct):
            raise InputImageError(f"{folder}: the slices of series {series_uid} differ in {attribute}: "
                                  + ", ".join(distinct[:4]) + (" …" if len(distinct) > 4 else ""))


def _same_numbers(values: list[str], tolerance: float = 1e-4) -> bool:
    """True when DICOM multi-values such as '1\\0\\0' and '1.0\\0\\0' hold the same numbers."""
    try:
        numbers = [np.array([float(v) for v in value.split("\\")]) for value in values]
    except ValueError:
        return False
    return all(n.shape == numbers[0].shape and np.allclose(n, numbers[0], atol=tolerance) for n in numbers)


def _check_slice_positions(reader, image, count: int, folder: Path) -> None:
    """Refuse a series with a missing, duplicate or displaced slice: ITK would spread the slices evenly."""
    key = "0020|0032"  # Image Position (Patient)
    if count < 2:
        return
    if not all(reader.HasMetaDataKey(index, key) for index in range(count)):
        raise InputImageError(f"{folder}: a slice lacks its Image Position (Patient); the slice geometry is unknown")
    try:
        positions = np.array([[float(v) for v in reader.GetMetaData(index, key).split("\\")] for index in range(count)])
    except ValueError:
        raise InputImageError(f"{folder}: a slice has an unreadable Image Position (Patient)") from None
    if positions.shape[1] != 3 or not np.all(np.isfinite(positions)):
        raise InputImageError(f"{folder}: a slice has an unreadable Image Position (Patient)")
    normal = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)[:, 2]
    gaps = np.diff(positions @ normal)
    mean = float(np.mean(gaps))
    if abs(mean) < 1e-6 or np.max(np.abs(gaps - mean)) > max(0.01 * abs(mean), 1e-3):
        raise InputImageError(
            f"{folder}: slices are not evenly spaced (gaps {np.round(np.min(gaps), 3)}–{np.round(np.max(gaps), 3)} mm): "
            "a slice is missing, duplicated or corrupt"
        )
