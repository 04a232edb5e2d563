"""Reading volumes (NIfTI, NRRD, MHA/MHD, DICOM series folders) and label masks into `Volume`s, and input validation.

Before ITK opens a file, `image_files` checks that it (and every data file its header names) is a regular file
and that its header holds nothing ITK would silently replace; NIfTI and compressed MetaImage data must be
complete and float NIfTI data finite. The header must then describe an image that fits in memory. DICOM series
folders are read by `dicom_folders`; every native read goes through `native_reads` (stderr silenced, the
`InputImageError` carrying the reason in one line; reads from several threads take turns). SimpleITK reads every
file, except label NRRDs in LPS/RAS space, which pynrrd reads (`read_mask`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .dicom_folders import read_dicom_folder
from .errors import DatasetError, InputImageError
from .image_files import check_before_reading, check_metaimage_complete, check_regular_file
from .native_reads import check_fits_in_memory, reading
from .volume import LPS_TO_RAS, Volume

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".seg.nrrd")
MIN_SPACING_MM, MAX_SPACING_MM = 1e-3, 100.0
MAX_EXTENT_MM = 3000.0  # a whole body is < 2.1 m long: a volume spanning more has an implausible spacing


def image_stem(name: str) -> str | None:
    """The file name without its image suffix (``CT.nii.gz`` → ``CT``), or None when it has none."""
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return None


def volume_stem(path: str | Path) -> str:
    """Output name for an input: ``CT.nii.gz`` → ``CT``; a DICOM folder → the folder's name."""
    name = Path(path).name
    stem = image_stem(name)
    if stem is not None:
        return stem
    return Path(name).stem if Path(path).is_file() else name


def check_image_file(path: Path) -> str:
    """Everything `image_files` checks before ITK may open ``path``; returns the name of the ITK reader to use."""
    import SimpleITK as sitk

    check_regular_file(path)
    name = sitk.ImageFileReader.GetImageIOFromFileName(str(path))  # the reader ITK picks by the content
    if not name:
        raise InputImageError(f"{path}: not a readable image (unknown or corrupt image format)")
    check_before_reading(path, name)
    return name


def _read_file(path: Path):
    import SimpleITK as sitk

    name = check_image_file(path)
    reader = sitk.ImageFileReader()
    reader.SetImageIO(name)
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    expected = check_fits_in_memory(reader, path)
    if name == "MetaImageIO":
        check_metaimage_complete(path, expected)
    return reader.Execute()


def _read_image(path: Path, series_uid: str | None):
    try:
        is_folder = path.is_dir()
    except OSError as error:
        raise InputImageError(f"{path}: cannot be read ({error.strerror or error})") from None
    with reading(path):
        return read_dicom_folder(path, series_uid) if is_folder else _read_file(path)


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


def read_mask(path: str | Path, keep_labels: bool = False) -> Volume:
    """A label image file (NIfTI, NRRD, MHA, seg.nrrd 3-D or layered) as a ``Volume``; `DatasetError` if unusable.

    Checked before reading as `read_volume` checks a file. Any value > 0 is lesion: the result holds 0/1 (uint8),
    or with ``keep_labels`` the label values of a 3-D label map (int32; layered and vector files are still 0/1).
    """
    path = Path(path)
    try:
        volume = _read_nrrd_mask(path) if path.name.lower().endswith((".nrrd", ".nhdr")) else None
        if volume is None:
            volume = _read_itk_mask(path)
    except DatasetError:
        raise
    except Exception as exc:  # unreadable files of any kind become one clear message
        raise DatasetError(f"cannot read the mask {path}: {exc}") from exc
    return replace(volume, array=_label_values(volume.array, keep_labels))


def _read_itk_mask(path: Path) -> Volume:
    with reading(path):
        image = _read_file(path)
    if image.GetDimension() != 3:
        raise DatasetError(f"{path}: a mask must be 3-D, this one is {image.GetDimension()}-D")
    volume = Volume.from_sitk(image, name=path.name)
    if volume.array.ndim == 4:  # vector pixels: lesion where any component is
        volume = replace(volume, array=(volume.array > 0).any(axis=-1))
    return volume


def _read_nrrd_mask(path: Path) -> Volume | None:
    """A (seg.)nrrd through pynrrd: 3-D label maps and 4-D layered segmentations; None when not LPS/RAS.

    Its direction is each axis's step divided by the spacing, correctly rounded (ITK's can differ by 1e-16).
    """
    import nrrd

    with reading(path):
        check_image_file(path)  # a FIFO, a truncated file or a header ITK would read wrong is refused first
    data, header = nrrd.read(str(path))  # axes in NRRD order: i, j, k (and a list axis for layers)
    space = str(header.get("space", "")).lower()
    if space not in ("left-posterior-superior", "lps", "right-anterior-superior", "ras"):
        return None
    directions = np.array(
        [[np.nan] * 3 if row is None else row for row in header["space directions"]], dtype=float
    )
    spatial = [axis for axis, row in enumerate(directions) if np.all(np.isfinite(row))]
    if len(spatial) != 3:
        raise DatasetError(f"{path}: a mask needs 3 spatial axes, found {len(spatial)}")
    other = tuple(axis for axis in range(data.ndim) if axis not in spatial)
    if other:  # layered segmentation: lesion wherever any layer has a segment
        data = (data > 0).any(axis=other)
    matrix = directions[spatial].T  # columns: physical step of i, j, k
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=float)
    if space in ("right-anterior-superior", "ras"):
        matrix, origin = LPS_TO_RAS @ matrix, LPS_TO_RAS @ origin
    spacing = np.linalg.norm(matrix, axis=0)
    return Volume(
        array=np.ascontiguousarray(data.transpose(2, 1, 0)),
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in origin),
        direction=matrix / spacing,
        name=path.name,
    )


def _label_values(array: np.ndarray, keep_labels: bool) -> np.ndarray:
    """Integer label values (int32, negatives as 0) when asked and available, else 0/1 uint8."""
    if keep_labels and np.issubdtype(array.dtype, np.integer):
        return np.where(array > 0, array, 0).astype(np.int32)
    return (array > 0).astype(np.uint8)


def validate_volume(volume: Volume, source: str = "input") -> None:
    """Raise `InputImageError` for an empty, one-voxel-thick (2-D), constant or non-finite volume or bad geometry."""
    array = volume.array
    if array.ndim != 3:
        raise InputImageError(f"{source}: is a {array.ndim}-D array; a 3-D volume is needed")
    if array.size == 0:
        raise InputImageError(f"{source}: is empty (size {volume.shape_ijk})")
    if min(array.shape) < 2:
        raise InputImageError(f"{source}: is a 2-D image (size {volume.shape_ijk}: one voxel thick); "
                              "a 3-D volume is needed")
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
