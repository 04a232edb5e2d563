"""What ITK's image readers take on trust, checked before they read (`io.read_volume` runs these checks).

Left to itself, ITK waits forever on a FIFO; reads a NIfTI zero-filled when it is truncated, its NaN voxels as
0, a voxel size of 0 or NaN as 1 mm, a non-finite offset as 0 and a negative size as 1; reads a MetaImage
``Offset = inf`` as 0 and ``ElementDataFile = LIST`` without files as uninitialised memory; and invents a unit
direction for a NRRD axis that has none. Here every file that will be opened must be a regular file, and each
header is parsed and refused (`InputImageError`, one line naming the file) when a field is one that ITK would
replace. Only the formats LesionDetect documents are read: NIfTI (one ``.nii`` file), NRRD, MetaImage, DICOM.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputImageError

READERS = {"NiftiImageIO": "NIfTI", "NrrdImageIO": "NRRD", "MetaImageIO": "MetaImage", "GDCMImageIO": "DICOM"}
MAX_DATA_FILES = 100_000  # a NRRD file list or pattern naming more is refused (a slice per file, at most)


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))
    return next((name for test, name in kinds if test(mode)), "not a file")


def check_regular_file(path: Path, source: Path | None = None) -> None:
    """Refuse ``path`` unless it is a regular file (links followed): opening a FIFO or device may never return.

    ``source`` is the image whose header names ``path`` as its data file (None: ``path`` is the image).
    """
    where = f"{path}: " if source is None else f"{source}: its data file {path} "
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputImageError(f"{where}does not exist" if source else f"{path}: no such file or folder") from None
    except (OSError, ValueError) as error:
        raise InputImageError(f"{where}cannot be read ({getattr(error, 'strerror', None) or error})") from None
    if not stat.S_ISREG(mode):
        raise InputImageError(f"{where}is not a regular file ({_file_kind(mode)})")


def check_folder(folder: Path) -> None:
    """Refuse a folder that cannot be listed or holds a FIFO, device or socket (a DICOM scan opens every file)."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    mode = entry.stat().st_mode
                except FileNotFoundError:  # a dangling link: no reader can open it, none blocks on it
                    continue
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    raise InputImageError(f"{folder}: holds {entry.name}, which is not a regular file "
                                          f"({_file_kind(mode)}); move it out of the folder")
    except OSError as error:
        raise InputImageError(f"{folder}: cannot be read ({error.strerror or error})") from None


def check_before_reading(path: Path, reader: str) -> None:
    """Refuse what the ``reader`` (an ITK ImageIO name) would read wrongly or block on; run before it opens ``path``."""
    if reader not in READERS:
        raise InputImageError(f"{path}: {reader.removesuffix('ImageIO') or 'unknown'} format; LesionDetect reads "
                              "NIfTI, NRRD, MetaImage (.mha/.mhd) and DICOM")
    if reader == "NiftiImageIO":
        check_nifti(path)
    elif reader == "NrrdImageIO":
        _check_nrrd(path)
    elif reader == "MetaImageIO":
        _check_metaimage(path)


# ----------------------------------------------------------------------------------------------------- NIfTI


@dataclass(frozen=True)
class _NiftiVersion:
    """Where a NIfTI-1 or NIfTI-2 header keeps the fields that decide how its voxels are read."""

    size: int  # sizeof_hdr
    integer: str  # struct code of dim[] and vox_offset
    real: str  # struct code of pixdim[], quatern, qoffset and srow
    dim: int
    datatype: int
    pixdim: int
    vox_offset: int
    codes: tuple[int, str]  # offset and struct code of qform_code, sform_code
    quatern: int
    srow: int


NIFTI1 = _NiftiVersion(348, "h", "f", dim=40, datatype=70, pixdim=76, vox_offset=108, codes=(252, "2h"),
                       quatern=256, srow=280)
NIFTI2 = _NiftiVersion(540, "q", "d", dim=16, datatype=12, pixdim=104, vox_offset=168, codes=(344, "2i"),
                       quatern=352, srow=400)
# NIfTI datatype code → bytes per voxel (ITK refuses the codes it cannot read; others are refused here)
NIFTI_DATATYPE_BYTES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8,
                        1536: 16, 1792: 16, 2048: 32, 2304: 4}
NIFTI_FLOAT_TYPES = {16: "f4", 64: "f8"}  # float32 and float64: scanned for NaN and Inf
NIFTI_PAIR_SUFFIXES = (".hdr", ".hdr.gz", ".img", ".img.gz")


@dataclass(frozen=True)
class NiftiLayout:
    """Where a NIfTI file's voxels are and what they are."""

    compressed: bool
    order: str  # struct byte order
    datatype: int
    offset: int
    nbytes: int


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as stream:
        return stream.read(2) == b"\x1f\x8b"


def nifti_layout(path: Path) -> NiftiLayout:
    """Parse and check a NIfTI header as ITK's NIfTI library reads it; refuse every field it would replace."""
    if path.name.lower().endswith(NIFTI_PAIR_SUFFIXES):
        raise InputImageError(f"{path}: a NIfTI/Analyze header with its voxels in a separate .img file; "
                              "LesionDetect reads single .nii files (convert the pair to .nii)")
    compressed = _is_gzip(path)
    with (gzip.open(path, "rb") if compressed else path.open("rb")) as stream:
        header = stream.read(NIFTI2.size)
    version = NIFTI2 if header[4:7] in (b"n+2", b"ni2") else NIFTI1
    if len(header) < version.size:
        raise InputImageError(f"{path}: truncated NIfTI header ({len(header)} bytes)")

    def field(offset: int, code: str, order: str) -> tuple:
        return struct.unpack_from(order + code, header, offset)

    # like the NIfTI library, tell the byte order from dim[0], which must be 1 to 7
    orders = [order for order in "<>" if 1 <= field(version.dim, version.integer, order)[0] <= 7]
    if not orders:
        raise InputImageError(f"{path}: corrupt NIfTI header: dim[0] is {field(version.dim, version.integer, '<')[0]}")
    order = orders[0]
    size = field(0, "i", order)[0]
    if size != version.size:
        raise InputImageError(f"{path}: corrupt NIfTI header: sizeof_hdr is {size}, not {version.size}")
    dims = field(version.dim, "8" + version.integer, order)
    problems = [f"dim[{axis}] is {dims[axis]}" for axis in range(1, dims[0] + 1) if dims[axis] < 1]
    datatype = field(version.datatype, "h", order)[0]
    if datatype not in NIFTI_DATATYPE_BYTES:
        problems.append(f"datatype {datatype} is unknown")
    pixdim = field(version.pixdim, "8" + version.real, order)
    problems += [f"pixdim[{axis}] (the voxel size) is {pixdim[axis]}" for axis in range(1, min(dims[0], 3) + 1)
                 if not math.isfinite(pixdim[axis]) or pixdim[axis] == 0]
    offset = field(version.vox_offset, version.integer if version is NIFTI2 else "f", order)[0]
    if not math.isfinite(offset) or offset != int(offset) or offset < version.size + 4:
        problems.append(f"vox_offset is {offset}, not past the {version.size + 4}-byte header")
    qform_code, sform_code = field(version.codes[0], version.codes[1], order)
    if qform_code > 0 and not all(map(math.isfinite, field(version.quatern, "6" + version.real, order))):
        problems.append("a quatern or qoffset value is not finite")
    if sform_code > 0 and not all(map(math.isfinite, field(version.srow, "12" + version.real, order))):
        problems.append("an srow value is not finite")
    if problems:
        raise InputImageError(f"{path}: corrupt NIfTI header: " + _problems_line(problems))
    count = int(np.prod([int(d) for d in dims[1 : dims[0] + 1]], dtype=object))
    return NiftiLayout(compressed, order, datatype, int(offset), count * NIFTI_DATATYPE_BYTES[datatype])


def check_nifti(path: Path) -> None:
    """The header (`nifti_layout`), then what ITK's NIfTI reader hides: missing data is zero-filled, NaN and Inf
    voxels read as 0."""
    try:
        layout = nifti_layout(path)
        needed = layout.offset + layout.nbytes
        if layout.compressed:
            with path.open("rb") as raw:
                raw.seek(-4, os.SEEK_END)
                stored = struct.unpack("<I", raw.read(4))[0]  # gzip trailer: uncompressed size mod 2**32
            truncated = needed < 2**32 and stored != needed
        else:
            truncated = path.stat().st_size < needed
        if truncated:
            raise InputImageError(f"{path}: truncated or corrupt NIfTI file (header needs {needed} bytes of data)")
        if layout.datatype in NIFTI_FLOAT_TYPES:
            with (gzip.open(path, "rb") if layout.compressed else path.open("rb")) as stream:
                stream.seek(layout.offset)
                dtype = np.dtype(layout.order + NIFTI_FLOAT_TYPES[layout.datatype])
                bad = _count_non_finite(stream, dtype, layout.nbytes)
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


# ------------------------------------------------------------------------------------------------------ NRRD

NRRD_NON_SPATIAL_KINDS = {"list", "point", "vector", "covariant-vector", "normal", "stub", "scalar", "complex",
                          "2-vector", "3-color", "rgb-color", "hsv-color", "xyz-color", "4-color", "rgba-color",
                          "3-vector", "3-gradient", "3-normal", "4-vector", "quaternion", "2d-symmetric-matrix",
                          "2d-masked-symmetric-matrix", "2d-matrix", "2d-masked-matrix", "3d-symmetric-matrix",
                          "3d-masked-symmetric-matrix", "3d-matrix", "3d-masked-matrix", "time"}


def _nrrd_header(path: Path) -> tuple[dict[str, str], list[str]]:
    """(fields, lines after the 'data file: LIST' line) of a NRRD header; a field name is lower-cased."""
    fields: dict[str, str] = {}
    listed: list[str] = []
    with path.open("rb") as stream:
        lines = iter(stream.readline, b"")
        for raw in lines:
            line = raw.decode("latin-1").rstrip("\r\n")
            if not line:
                break
            if line.startswith("#") or ":=" in line or ": " not in line:
                continue
            key, _, value = line.partition(": ")
            fields[key.strip().lower()] = value.strip()
            if key.strip().lower() in ("data file", "datafile") and value.strip().upper().startswith("LIST"):
                listed = [name.decode("latin-1").strip() for name in lines if name.strip()]
                break
    return fields, listed


def _nrrd_data_files(path: Path, value: str, listed: list[str]) -> list[Path]:
    """The files a NRRD 'data file' field names: one, a LIST (the following lines) or a 'format min max step' pattern."""
    words = value.split()
    if words and words[0].upper() == "LIST":
        names = listed
    elif len(words) >= 4:
        try:
            first, last, step = (int(word) for word in words[1:4])
            count = 0 if step == 0 else max(0, (last - first) // step + 1)
            if not 0 < count <= MAX_DATA_FILES:
                raise ValueError
            names = [words[0] % number for number in range(first, last + (1 if step > 0 else -1), step)]
        except (ValueError, TypeError):
            raise InputImageError(f"{path}: unreadable NRRD data file pattern {_short(value)}") from None
    else:
        names = [value]
    if len(names) > MAX_DATA_FILES:
        raise InputImageError(f"{path}: names more than {MAX_DATA_FILES} data files")
    return [path.parent / name for name in names]  # a relative name is relative to the header's folder


def _check_nrrd(path: Path) -> None:
    """Data files must be regular files; a spatial axis needs a space direction (ITK would invent one)."""
    fields, listed = _nrrd_header(path)
    data = fields.get("data file", fields.get("datafile"))
    if data:
        for file in _nrrd_data_files(path, data, listed):
            check_regular_file(file, source=path)
    directions = re.findall(r"\([^)]*\)|none", fields.get("space directions", ""), flags=re.IGNORECASE)
    sizes = fields.get("sizes", "").split()
    kinds = fields.get("kinds", "").lower().split()
    for axis, direction in enumerate(directions):
        size = sizes[axis] if axis < len(sizes) else "1"
        kind = kinds[axis] if axis < len(kinds) else "domain"
        if direction.lower() == "none" and size != "1" and kind not in NRRD_NON_SPATIAL_KINDS:
            raise InputImageError(f"{path}: NRRD axis {axis} ({kind}, size {size}) has no space direction")


# ------------------------------------------------------------------------------------------------- MetaImage

METAIMAGE_VECTORS = {  # field → values per dimension (1: one per axis, 2: a matrix); finite numbers
    "ElementSpacing": 1, "ElementSize": 1, "Offset": 1, "Origin": 1, "Position": 1, "CenterOfRotation": 1,
    "TransformMatrix": 2, "Rotation": 2, "Orientation": 2,
}
METAIMAGE_INTEGERS = {"NDims": 1, "HeaderSize": -1, "CompressedDataSize": 0, "ElementNumberOfChannels": 1}


@dataclass(frozen=True)
class MetaImageHeader:
    fields: dict[str, list[str]]  # every value of each field, in file order
    data_offset: int  # where LOCAL data starts

    def last(self, key: str, default: str = "") -> str:
        return self.fields.get(key, [default])[-1]


def metaimage_header(path: Path) -> MetaImageHeader:
    """The fields of a MetaImage header up to ``ElementDataFile`` (MetaIO stops reading there)."""
    fields: dict[str, list[str]] = {}
    with path.open("rb") as stream:
        for _ in range(256):
            line = stream.readline(4096).decode("latin-1")
            key, _, value = line.partition("=")
            if key.strip():
                fields.setdefault(key.strip(), []).append(value.strip())
            if key.strip() in ("ElementDataFile", "") or not line:
                break
        return MetaImageHeader(fields, stream.tell())


def _metaimage_problems(header: MetaImageHeader) -> list[str]:
    """Fields MetaIO would read as 0 or leave half-read: every number must parse, be finite and be complete."""
    problems = []
    for key, minimum in METAIMAGE_INTEGERS.items():
        for value in header.fields.get(key, []):
            if not (re.fullmatch(r"-?[0-9]+", value) and int(value) >= minimum):
                problems.append(f"{key} = {_short(value)} is not a whole number >= {minimum}")
    if problems:
        return problems  # without a valid NDims the other fields cannot be checked
    ndims = int(header.last("NDims", "0"))
    for value in header.fields.get("DimSize", []):
        if len(value.split()) != ndims or not all(re.fullmatch(r"[0-9]+", v) and int(v) >= 1 for v in value.split()):
            problems.append(f"DimSize = {_short(value)} is not {ndims} sizes >= 1")
    for key, power in METAIMAGE_VECTORS.items():
        for value in header.fields.get(key, []):
            try:
                numbers = [float(v) for v in value.split()]
            except ValueError:
                numbers = []
            if len(numbers) != ndims**power or not all(map(math.isfinite, numbers)):
                problems.append(f"{key} = {_short(value)} is not {ndims**power} finite numbers")
    return problems


def _short(value: str, length: int = 40) -> str:
    """A header value for a message: quoted, and cut to ``length`` characters."""
    return repr(value if len(value) <= length else value[:length] + "…")


def _problems_line(problems: list[str], most: int = 3) -> str:
    """The first problems, joined for a one-line message."""
    more = f"; and {len(problems) - most} more" if len(problems) > most else ""
    return "; ".join(problems[:most]) + more


def _check_metaimage(path: Path) -> None:
    header = metaimage_header(path)
    problems = _metaimage_problems(header)
    if problems:
        raise InputImageError(f"{path}: corrupt MetaImage header: " + _problems_line(problems))
    data_file = header.last("ElementDataFile")
    if data_file.upper().startswith("LIST") or len(data_file.split()) > 1:
        raise InputImageError(f"{path}: MetaImage data in several files (ElementDataFile = {_short(data_file)}) is not "
                              "supported; store the image in one file (.mha)")
    if data_file.upper() == "LOCAL":
        if int(header.last("HeaderSize", "0")) > 0:
            raise InputImageError(f"{path}: HeaderSize {_short(header.last('HeaderSize'))} with data in the header file "
                                  "(ElementDataFile = LOCAL): where the voxels start is ambiguous")
    elif data_file:
        check_regular_file(path.parent / data_file, source=path)


def check_metaimage_complete(path: Path, expected: int) -> None:
    """ITK leaves the rest of the buffer as it was (stale memory) when compressed MetaImage data ends early."""
    header = metaimage_header(path)
    data_file = header.last("ElementDataFile")
    if header.last("CompressedData").lower() != "true" or header.last("HeaderSize", "0") != "0" or not data_file:
        return
    source, offset = (path, header.data_offset) if data_file.upper() == "LOCAL" else (path.parent / data_file, 0)
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
