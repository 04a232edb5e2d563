"""Reading volumes (NIfTI, NRRD, MHA/MHD, DICOM series folders) with SimpleITK, and input validation.

Before any voxel is read the header must describe an image that fits in memory, and NIfTI and compressed
MetaImage data must be complete (ITK fills missing data with zeros or stale memory without a word); float
NIfTI data is scanned for NaN and Inf (ITK's NIfTI reader turns them into 0 without a word). A DICOM
series must have evenly spaced slices (ITK only warns about a missing slice and returns a wrong grid). The
native readers' own messages on stderr are silenced: the `InputImageError` carries the reason in one line.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import InputImageError
from .resources import check_read_memory
from .volume import Volume

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".seg.nrrd")
MIN_SPACING_MM, MAX_SPACING_MM = 1e-3, 100.0
MAX_EXTENT_MM = 3000.0  # a whole body is < 2.1 m long: a volume spanning more has an implausible spacing


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
    with _native_output_silenced():
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
    files = series[series_uid]
    first = sitk.ImageFileReader()
    first.SetFileName(files[0])
    first.ReadImageInformation()
    _check_fits_in_memory(first, folder, slices=len(files))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    image = reader.Execute()
    _check_slice_positions(reader, image, len(files), folder)
    return image


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


def _nifti_layout(header: bytes) -> tuple[str, int, int, int] | None:
    """(byte order, datatype code, vox_offset, data bytes) of a NIfTI-1 or NIfTI-2 header, or None if not NIfTI."""
    if len(header) < 4:
        return None
    for order in "<>":
        size = struct.unpack(order + "i", header[:4])[0]
        if size == 348 and len(header) >= 348:
            dims = struct.unpack(order + "8h", header[40:56])
            datatype, bitpix = struct.unpack(order + "2h", header[70:74])
            offset = struct.unpack(order + "f", header[108:112])[0]
        elif size == 540 and len(header) >= 540:
            dims = struct.unpack(order + "8q", header[16:80])
            datatype, bitpix = struct.unpack(order + "2h", header[12:16])
            offset = struct.unpack(order + "q", header[168:176])[0]
        else:
            continue
        if not np.isfinite(offset) or offset < 0:
            return None  # ITK reports such a header itself
        count = int(np.prod([max(1, d) for d in dims[1 : 1 + max(0, min(dims[0], 7))]], dtype=object))
        return order, datatype, int(offset), count * max(1, bitpix // 8)
    return None


NIFTI_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 and float64


def _check_nifti(path: Path) -> None:
    """What ITK's NIfTI reader hides: a truncated file reads zero-filled, NaN and Inf voxels read as 0."""
    compressed = path.name.lower().endswith(".gz")
    try:
        with (gzip.open(path, "rb") if compressed else path.open("rb")) as stream:
            layout = _nifti_layout(stream.read(540))
            if layout is None:
                return
            order, datatype, offset, nbytes = layout
            if compressed:
                with path.open("rb") as raw:
                    raw.seek(-4, os.SEEK_END)
                    stored = struct.unpack("<I", raw.read(4))[0]  # gzip trailer: uncompressed size mod 2**32
                truncated = offset + nbytes < 2**32 and stored != offset + nbytes
            else:
                truncated = path.stat().st_size < offset + nbytes
            if truncated:
                raise InputImageError(
                    f"{path}: truncated or corrupt NIfTI file (header needs {offset + nbytes} bytes of data)"
                )
            if datatype in NIFTI_FLOAT_TYPES:
                stream.seek(offset)
                bad = _count_non_finite(stream, np.dtype(order + NIFTI_FLOAT_TYPES[datatype]), nbytes)
                if bad:
                    raise InputImageError(f"{path}: holds {bad} NaN or infinite voxels")
    except (OSError, EOFError, zlib.error):
        raise InputImageError(f"{path}: not a readable image (corrupt compressed data)") from None


def _count_non_finite(stream, dtype: np.dtype, nbytes: int) -> int:
    """NaN and infinite values among the next ``nbytes`` of ``stream``, read in bounded chunks."""
    bad, chunk = 0, dtype.itemsize * 2**20
    while nbytes > 0:
        data = stream.read(min(chunk, nbytes))
        if not data:
            break
        nbytes -= len(data)
        values = np.frombuffer(data[: len(data) - len(data) % dtype.itemsize], dtype=dtype)
        bad += int(values.size - np.count_nonzero(np.isfinite(values)))
    return bad


def _check_metaimage_complete(path: Path, expected: int) -> None:
    """ITK leaves the rest of the buffer as it was (stale memory) when compressed MetaImage data ends early."""
    header: dict[str, str] = {}
    with path.open("rb") as stream:
        for _ in range(64):
            key, _, value = stream.readline(4096).decode("latin-1").partition("=")
            header[key.strip()] = value.strip()
            if key.strip() in ("ElementDataFile", ""):
                break
        offset = stream.tell()
    data_file = header.get("ElementDataFile", "")
    if header.get("CompressedData", "").lower() != "true" or header.get("HeaderSize", "0") != "0":
        return
    if data_file.upper() == "LOCAL":
        source = path
    elif data_file and " " not in data_file and not data_file.upper().startswith("LIST"):
        source, offset = path.parent / data_file, 0
    else:
        return
    try:
        with source.open("rb") as stream:
            stream.seek(offset)
            inflated = _inflated_size(stream, limit=expected)
    except (OSError, zlib.error):
        inflated = -1
    if inflated != expected:
        raise InputImageError(f"{path}: truncated or corrupt MetaImage file (header needs {expected} bytes of data)")


def _inflated_size(stream, limit: int) -> int:
    """Bytes a zlib/gzip stream inflates to, counted in bounded chunks; stops once past ``limit``."""
    inflater = zlib.decompressobj(47)  # zlib or gzip header, detected
    produced = 0
    while produced <= limit and not inflater.eof:
        data = inflater.unconsumed_tail or stream.read(2**20)
        if not data:
            break
        produced += len(inflater.decompress(data, 2**24))
    return produced


def _check_fits_in_memory(reader, source: Path, slices: int = 1) -> int:
    """Refuse, before reading voxels, an image whose header asks for more memory than is available."""
    import SimpleITK as sitk

    voxels = int(np.prod(reader.GetSize(), dtype=object)) * slices
    component = sitk.Image([1, 1], reader.GetPixelID(), max(1, reader.GetNumberOfComponents())).GetSizeOfPixelComponent()
    nbytes = voxels * max(1, reader.GetNumberOfComponents()) * component
    check_read_memory(nbytes, str(source))
    return nbytes


def _itk_reason(error: RuntimeError) -> str:
    """The informative line of a SimpleITK exception (not its source location, object address or errno noise)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Exception thrown in SimpleITK")
             and line != "Reason: No such file or directory"]
    nrrd = [line.partition(": ")[2] for line in lines if line.startswith("[nrrd]") and line.partition(": ")[2]]
    reason = nrrd[-1] if nrrd else (lines[0] if lines else "unknown reason")
    reason = re.sub(r"^(ITK ERROR|itk::ERROR|sitk::ERROR):\s*(\w+\(0x[0-9a-fA-F]+\):\s*)?", "", reason)
    if reason.startswith("Unable to determine ImageIO reader"):
        reason = "unknown or corrupt image format"
    return reason[:200]


@contextmanager
def _native_output_silenced() -> Iterator[None]:
    """ITK, NIfTI, MetaIO and GDCM print diagnostics on the process's own stderr: hide them during a read."""
    import SimpleITK as sitk

    warnings = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        saved = None
    try:
        if saved is not None:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
        yield
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings)


def _read_file(path: Path):
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    expected = _check_fits_in_memory(reader, path)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        _check_nifti(path)
    elif name.endswith((".mha", ".mhd")):
        _check_metaimage_complete(path, expected)
    return reader.Execute()


def _read_image(path: Path, series_uid: str | None):
    if not path.exists():
        raise InputImageError(f"{path}: no such file or folder")
    try:
        with _native_output_silenced():
            return _read_dicom_folder(path, series_uid) if path.is_dir() else _read_file(path)
    except RuntimeError as error:
        raise InputImageError(f"{path}: not a readable image ({_itk_reason(error)})") from None
    except OSError as error:
        raise InputImageError(f"{path}: cannot be read ({error.strerror or error})") from None


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
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:  # one time point (NIfTI files read so already)
        image = image[:, :, :, 0]
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
            f"{source}: absurd voxel spacing {tuple(float(s) for s in spacing)} mm "
            f"(expected {MIN_SPACING_MM}–{MAX_SPACING_MM} mm)"
        )
    extent = (np.array(volume.shape_ijk) - 1) * spacing
    if extent.max() > MAX_EXTENT_MM:
        raise InputImageError(
            f"{source}: spans {tuple(round(float(e), 1) for e in extent)} mm, more than any body "
            f"(at most {MAX_EXTENT_MM:.0f} mm): its voxel spacing {tuple(float(s) for s in spacing)} mm is implausible"
        )
    direction = np.asarray(volume.direction, dtype=float)
    if not np.all(np.isfinite(direction)) or not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise InputImageError(f"{source}: direction matrix is not orthonormal: {direction.round(4).tolist()}")
    if not np.all(np.isfinite(volume.origin)):
        raise InputImageError(f"{source}: origin is not finite")
