"""Reading volumes (NIfTI, NRRD, MHA/MHD, DICOM series folders) with SimpleITK, and input validation."""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import InputImageError
from .volume import Volume

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".seg.nrrd")
MIN_SPACING_MM, MAX_SPACING_MM = 1e-3, 100.0


def volume_stem(path: str | Path) -> str:
    """Output name for an input: ``CT.nii.gz`` → ``CT``; a DICOM folder → the folder's name."""
    name = Path(path).name
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem if Path(path).is_file() else name


def dicom_series(folder: Path) -> dict[str, list[str]]:
    """The DICOM series in ``folder``: series instance UID → sorted file names."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader
    return {uid: list(reader.GetGDCMSeriesFileNames(str(folder), uid)) for uid in reader.GetGDCMSeriesIDs(str(folder))}


def _read_dicom_folder(folder: Path, series_uid: str | None):
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
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(series[series_uid])
    return reader.Execute()


def _nifti_expected_bytes(header: bytes) -> int | None:
    """vox_offset + data size from a NIfTI-1 or NIfTI-2 header (either byte order), or None if not NIfTI."""
    for order in "<>":
        size = struct.unpack(order + "i", header[:4])[0]
        if size == 348 and len(header) >= 348:
            dims = struct.unpack(order + "8h", header[40:56])
            bitpix, offset = struct.unpack(order + "h", header[72:74])[0], struct.unpack(order + "f", header[108:112])[0]
        elif size == 540 and len(header) >= 540:
            dims = struct.unpack(order + "8q", header[16:80])
            bitpix, offset = struct.unpack(order + "h", header[14:16])[0], struct.unpack(order + "q", header[168:176])[0]
        else:
            continue
        count = int(np.prod([max(1, d) for d in dims[1 : 1 + max(0, min(dims[0], 7))]], dtype=np.int64))
        return int(offset) + count * max(1, bitpix // 8)
    return None


def _check_nifti_complete(path: Path) -> None:
    """ITK reads a truncated NIfTI silently (zero-filled); compare the stored size with what the header needs."""
    compressed = path.name.lower().endswith(".gz")
    try:
        with (gzip.open(path, "rb") if compressed else path.open("rb")) as stream:
            expected = _nifti_expected_bytes(stream.read(540))
    except (OSError, EOFError):
        raise InputImageError(f"{path}: not a readable image (corrupt compressed data)") from None
    if expected is None:
        return
    if compressed:
        with path.open("rb") as stream:
            stream.seek(-4, os.SEEK_END)
            stored = struct.unpack("<I", stream.read(4))[0]  # gzip trailer: uncompressed size mod 2**32
        truncated = expected < 2**32 and stored != expected
    else:
        truncated = path.stat().st_size < expected
    if truncated:
        raise InputImageError(f"{path}: truncated or corrupt NIfTI file (header needs {expected} bytes of data)")


def _read_image(path: Path, series_uid: str | None):
    import SimpleITK as sitk

    if not path.exists():
        raise InputImageError(f"{path}: no such file or folder")
    try:
        if path.is_dir():
            return _read_dicom_folder(path, series_uid)
        if path.name.lower().endswith((".nii", ".nii.gz")):
            _check_nifti_complete(path)
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        first_line = next((line for line in str(error).splitlines() if line.strip()), "unknown reason")
        raise InputImageError(f"{path}: not a readable image ({first_line.strip()[:200]})") from None


def _dicom_modality(image) -> str | None:
    """DICOM modality (0008|0060) when the file carries it, e.g. 'CT' or 'MR'."""
    key = "0008|0060"
    if image.HasMetaDataKey(key):
        value = image.GetMetaData(key).strip().upper()
        return value if value in ("CT", "MR") else None
    return None


def guess_modality(array: np.ndarray, air_fraction: float = 0.01) -> str:
    """'CT' when ≥ 1 % of voxels hold air-like Hounsfield values (< −500), else 'MR' (for files without a tag).

    Every CT in the development data has ≥ 3 % such voxels (extremity crops ≥ 10 %), every MR none or
    a few processing artefacts (< 0.1 %).
    """
    return "CT" if np.count_nonzero(array < -500) >= air_fraction * array.size else "MR"


def read_volume(path: str | Path, series_uid: str | None = None, name: str | None = None) -> Volume:
    """Read a 3-D scalar volume, keeping spacing, origin and direction exactly; reject unusable input."""
    path = Path(path)
    image = _read_image(path, series_uid)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputImageError(
            f"{path}: has {image.GetNumberOfComponentsPerPixel()} components per voxel; a scalar 3-D image is needed"
        )
    if image.GetDimension() != 3:
        raise InputImageError(f"{path}: is a {image.GetDimension()}-D image; a 3-D volume is needed")
    volume = Volume.from_sitk(image, name=name or volume_stem(path), modality=_dicom_modality(image))
    validate_volume(volume, source=str(path))
    return volume if volume.modality else replace(volume, modality=guess_modality(volume.array))


def validate_volume(volume: Volume, source: str = "input") -> None:
    """Raise `InputImageError` for an empty, thin-to-nothing, constant or non-finite volume or bad geometry."""
    array = volume.array
    if array.ndim != 3:
        raise InputImageError(f"{source}: is a {array.ndim}-D array; a 3-D volume is needed")
    if array.size == 0:
        raise InputImageError(f"{source}: is empty (size {volume.shape_ijk})")
    if min(array.shape) < 2 and array.size < 8:
        raise InputImageError(f"{source}: too small to hold a lesion (size {volume.shape_ijk})")
    if array.dtype.kind not in "biuf":
        raise InputImageError(f"{source}: unsupported voxel type {array.dtype}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise InputImageError(f"{source}: holds {bad} NaN or infinite voxels")
    if array.min() == array.max():
        raise InputImageError(f"{source}: is constant (every voxel is {array.flat[0]}); nothing to detect")
    spacing = np.asarray(volume.spacing, dtype=float)
    if not np.all(np.isfinite(spacing)) or spacing.min() < MIN_SPACING_MM or spacing.max() > MAX_SPACING_MM:
        raise InputImageError(
            f"{source}: absurd voxel spacing {tuple(spacing)} mm (expected {MIN_SPACING_MM}–{MAX_SPACING_MM} mm)"
        )
    direction = np.asarray(volume.direction, dtype=float)
    if not np.all(np.isfinite(direction)) or not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise InputImageError(f"{source}: direction matrix is not orthonormal: {direction.round(4).tolist()}")
    if not np.all(np.isfinite(volume.origin)):
        raise InputImageError(f"{source}: origin is not finite")
