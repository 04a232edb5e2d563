"""Property tests over generated images: each is read (and detected on) correctly, or refused with one clear error.

Every generated image is written to a file — NIfTI (.nii, .nii.gz), NRRD (raw, gzip), MetaImage (.mha, .mhd; raw,
zlib) or a DICOM series folder — and read back with `read_volume`. The oracle is the generator's own description:
a usable 3-D scalar image must come back with exactly its voxels and its index-to-LPS mapping (a negative spacing
is a flipped axis, so only spacing·direction is invariant), anything else must raise `InputImageError` with a
one-line message naming the file. Truncated files must never come back different from the original; files with
flipped bytes must come back as a valid volume or be refused. Header fields (NIfTI sizeof_hdr, dims, datatype,
voxel sizes, offsets and geometry; MetaImage and NRRD sizes, numbers and data files, FIFOs and devices included)
are edited, alone, with a cut or with a NaN voxel: each edit says whether it must be refused, and what is accepted
must not hold a voxel that was never written (so a zero-filled, shifted or uninitialised read shows). DICOM series
may lose a slice, hold one, or have a slice of another orientation or pixel spacing. In-memory volumes go through
`detect` (a result on
the input's grid or one `LesionDetectError`), and a sample of files through the command line, whose per-case
outcome must match the library's and which must leave no output of a failed case and no temporary file.

Nothing may hang: hypothesis deadlines, a SIGALRM limit per test (`Hang` is a BaseException so that no
``except OSError`` can swallow it) and a faulthandler backstop for native code. Memory reported available is
capped at 1 GiB, so a corrupt header declaring a huge image is refused rather than allocated.
The number of generated cases is printed by `test_generated_case_count` (``pytest -s``). Seeded; see
`conftest.fuzz_settings` for longer runs.
"""

from __future__ import annotations

import faulthandler
import gzip
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import (
    edit_nifti_header,
    fifo_watch,
    fuzz_settings,
    rewrite_slice,
    write_series,
    write_threshold_bundle,
)
from hypothesis import assume, given
from hypothesis import strategies as st

from LesionDetectLib import resources
from LesionDetectLib.bundles import open_bundle
from LesionDetectLib.detect import detect
from LesionDetectLib.errors import InputImageError, LesionDetectError
from LesionDetectLib.image_files import NIFTI_DATATYPE_BYTES
from LesionDetectLib.io import read_volume
from LesionDetectLib.volume import Volume

TEST_LIMIT_S = 120  # per test (all of its examples); hypothesis deadlines bound each example
EXAMPLES = {"read: generated images": 200, "read: truncated or corrupted files": 200, "read: header fields": 250,
            "read: DICOM series": 60,
            "detect: in-memory volumes": 100, "command line: batches of generated images": 2}
GENERATED: Counter = Counter()
DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64")
FORMATS = ((".nii", False), (".nii.gz", True), (".nrrd", False), (".nrrd", True),
           (".mha", False), (".mha", True), (".mhd", False), (".mhd", True))
HEADER_FORMATS = FORMATS + ((".nhdr", False), (".nhdr", True))
VALID_MAGNITUDES = (0.002, 0.35, 0.8, 1.0, 2.5, 7.0, 60.0)  # inside [0.001, 100] mm, none at an edge
BAD_MAGNITUDES = (0.0, 1e-4, 150.0, 1e5)
CLI_TIMEOUT_S = 300


class Hang(BaseException):
    """A test ran past its time limit (a BaseException: no ``except Exception/OSError`` in the code swallows it)."""


@pytest.fixture(autouse=True)
def time_limit():
    def expire(signum, frame):
        raise Hang(f"test ran longer than {TEST_LIMIT_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_LIMIT_S)
    faulthandler.dump_traceback_later(TEST_LIMIT_S + 60, exit=True)  # a hang inside native code
    yield
    faulthandler.cancel_dump_traceback_later()
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def one_gib_available(monkeypatch):
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 2**30)
    monkeypatch.delenv(resources.SKIP_ENV, raising=False)


@pytest.fixture(scope="module")
def fast_model(tmp_path_factory):
    """The test threshold model on a coarse grid with small patches: detect takes milliseconds."""
    folder = write_threshold_bundle(tmp_path_factory.mktemp("fuzz-model") / "bundle",
                                    spacing=[2.0, 2.0, 2.0], patch_size=[16, 16, 16])
    return folder, open_bundle(folder)


# ---------------------------------------------------------------- generated images and what they must read as


@dataclass
class Case:
    """An image as written: ``array`` is [k, j, i] (3-D), [j, i] (2-D) or [t, k, j, i] (4-D), + components."""

    array: np.ndarray
    components: int
    spacing: tuple[float, float, float]  # signed (a negative spacing flips the axis)
    direction: np.ndarray
    origin: tuple[float, float, float]
    suffix: str = ".nrrd"
    compress: bool = False

    @property
    def spatial(self) -> np.ndarray:
        """The voxels of a 3-D scalar reading of the image ([k, j, i]), or None."""
        if self.components > 1 or self.array.ndim == 2:
            return None
        if self.array.ndim == 4:
            return self.array[0] if self.array.shape[0] == 1 else None
        return self.array

    def affine(self) -> np.ndarray:
        return self.direction @ np.diag(self.spacing)


def refusal_reason(case: Case) -> str | None:
    """Why `read_volume` must refuse the case (None: it must read it exactly)."""
    voxels = case.spatial
    if voxels is None:
        return "not a 3-D scalar image"
    if min(voxels.shape) < 2:
        return "2-D (one voxel thick)"
    if voxels.dtype.kind == "f" and not np.isfinite(voxels).all():
        return "NaN/Inf"
    if voxels.min() == voxels.max():
        return "constant"
    magnitude = np.abs(np.asarray(case.spacing))
    if magnitude.min() < 1e-3 or magnitude.max() > 100.0:
        return "spacing"
    if ((np.array(voxels.shape[::-1]) - 1) * magnitude).max() > 3000.0:
        return "extent"
    if not np.allclose(case.direction.T @ case.direction, np.eye(3), atol=1e-6):
        return "direction"
    return None


def rotation(angles) -> np.ndarray:
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


@st.composite
def directions(draw, kinds) -> np.ndarray:
    kind = draw(st.sampled_from(kinds))
    if kind == "identity":
        return np.eye(3)
    angles = draw(st.tuples(*[st.floats(-np.pi, np.pi, allow_nan=False)] * 3))
    if kind == "rotation":
        return rotation(angles)
    if kind == "reflection":
        return rotation(angles) @ np.diag([1.0, -1.0, 1.0])
    row, column = draw(st.sampled_from([(0, 1), (0, 2), (1, 2), (2, 0)]))
    matrix = np.eye(3)
    if kind == "skew":  # invertible, not orthonormal
        matrix[row, column] = 0.3
        return matrix
    matrix[:, column] = matrix[:, row]  # "singular": two axes point the same way
    return matrix


@st.composite
def voxel_arrays(draw, shape, dtype: str) -> np.ndarray:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["random", "random", "random", "extremes", "constant", "non-finite"]))
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        array = rng.normal(20.0, 60.0, size=shape).astype(dtype)
        if kind == "extremes":
            array.flat[:2] = (np.finfo(dtype).min / 4, np.finfo(dtype).max / 4)
    else:
        info = np.iinfo(dtype)
        low, high = (info.min, info.max) if kind == "extremes" else (max(info.min, -1500), min(info.max, 1500))
        array = rng.integers(low, high, size=shape, dtype=dtype, endpoint=True)
        if kind == "extremes" and array.size >= 2:
            array.flat[:2] = (info.min, info.max)
    if kind == "constant":
        array[...] = array.flat[0]
    if kind == "non-finite" and dtype.kind == "f":
        array.flat[int(rng.integers(array.size))] = rng.choice([np.nan, np.inf, -np.inf])
    return array


@st.composite
def cases(draw, valid: bool = False, formats=FORMATS) -> Case:
    """Any image (or, with ``valid``, a usable small 3-D one) in any of ``formats``."""
    suffix, compress = draw(st.sampled_from(formats))
    metaimage = suffix in (".mha", ".mhd")
    dtype = draw(st.sampled_from(DTYPES))
    layout = "3d" if valid else draw(st.sampled_from(["3d"] * 8 + ["2d", "4d", "vector"]))
    side = st.integers(2 if valid else 1, 9)
    shape = {"3d": (side, side, side), "2d": (st.integers(2, 9),) * 2, "4d": (st.integers(1, 3),) + (st.integers(2, 6),) * 3,
             "vector": (st.integers(2, 6),) * 3}[layout]
    shape = tuple(draw(s) for s in shape)
    components = draw(st.integers(2, 3)) if layout == "vector" else 1
    arrays = voxel_arrays(shape + ((components,) if components > 1 else ()), dtype)
    if valid:
        arrays = arrays.filter(lambda a: np.isfinite(a).all() and a.min() != a.max())
    array = draw(arrays)
    magnitudes = VALID_MAGNITUDES if valid or layout != "3d" else VALID_MAGNITUDES + BAD_MAGNITUDES
    spacing = [draw(st.sampled_from(magnitudes)) for _ in range(3)]
    if not metaimage:  # only MetaImage can state a zero spacing (others: a flipped axis is a flipped direction)
        spacing = [s if s > 0 else 1.0 for s in spacing]
    if metaimage and not valid and layout == "3d":
        spacing = [s * draw(st.sampled_from([1.0, 1.0, 1.0, -1.0])) for s in spacing]
    kinds = ["identity", "rotation", "rotation", "reflection"]
    if not valid and layout == "3d" and not suffix.startswith(".nii"):  # ITK's NIfTI writer would orthogonalise
        kinds += ["skew", "singular"]
    direction = draw(directions(kinds))
    origin = tuple(draw(st.floats(-400, 400, allow_nan=False, width=32)) for _ in range(3))
    return Case(array, components, tuple(spacing), direction, origin, suffix, compress)


def _patch_header(path: Path, case: Case) -> None:
    """Write what SimpleITK refuses to set (a zero or negative spacing, a singular direction) into the header."""
    singular = abs(np.linalg.det(case.direction)) < 1e-9
    data = path.read_bytes()
    if path.suffix in (".mha", ".mhd"):
        end = data.index(b"ElementDataFile")
        header, rest = data[:end].decode("ascii"), data[end:]
        header = re.sub(r"ElementSpacing = .*", "ElementSpacing = " + " ".join(repr(float(s)) for s in case.spacing), header)
        if singular:
            flat = " ".join(repr(float(v)) for v in case.direction.T.ravel())
            header = re.sub(r"TransformMatrix = .*", f"TransformMatrix = {flat}", header)
        path.write_bytes(header.encode("ascii") + rest)
    elif path.suffix == ".nrrd" and singular:
        end = data.index(b"\n\n")
        vectors = case.affine()
        text = " ".join("(" + ",".join(repr(float(v)) for v in vectors[:, axis]) + ")" for axis in range(3))
        header = re.sub(r"space directions: .*", f"space directions: {text}", data[:end].decode("ascii"))
        path.write_bytes(header.encode("ascii") + data[end:])


def write_case(case: Case, folder: Path, stem: str = "case") -> Path:
    """Write ``case`` as ``folder/stem<suffix>`` (for .mhd also its .raw/.zraw)."""
    path = folder / f"{stem}{case.suffix}"
    image = sitk.GetImageFromArray(case.array, isVector=case.components > 1)
    if image.GetDimension() == 3:
        singular = abs(np.linalg.det(case.direction)) < 1e-9
        image.SetSpacing([abs(s) if s != 0 else 1.0 for s in case.spacing])
        image.SetDirection((np.eye(3) if singular else case.direction).ravel().tolist())
        image.SetOrigin(case.origin)
    elif image.GetDimension() == 4:
        block = np.eye(4)
        block[:3, :3] = case.direction
        image.SetSpacing([*[abs(s) for s in case.spacing], 1.0])
        image.SetDirection(block.ravel().tolist())
        image.SetOrigin([*case.origin, 0.0])
    sitk.WriteImage(image, str(path), useCompression=case.compress)
    if image.GetDimension() == 3:
        _patch_header(path, case)
    return path


def assert_one_line_refusal(error: LesionDetectError, path: Path) -> None:
    message = str(error)
    assert "\n" not in message and "Traceback" not in message and len(message) < 500, message
    assert message.startswith(str(path)), message


def assert_reads_exactly(volume: Volume, case: Case) -> None:
    voxels = case.spatial
    assert volume.array.dtype == voxels.dtype
    assert np.array_equal(volume.array, voxels)
    expected = case.affine()
    tolerance = 1e-5 * max(1.0, float(np.abs(expected).max()))
    assert np.allclose(volume.ijk_to_lps()[:3, :3], expected, rtol=1e-5, atol=tolerance), (
        volume.ijk_to_lps()[:3, :3], expected)
    assert np.allclose(volume.origin, case.origin, atol=1e-3)


# ------------------------------------------------------------------------------------------ the properties


@fuzz_settings(EXAMPLES["read: generated images"])
@given(case=cases())
def test_generated_images_read_exactly_or_are_refused_in_one_line(case):
    GENERATED["read: generated images"] += 1
    with tempfile.TemporaryDirectory() as folder:
        path = write_case(case, Path(folder))
        reason = refusal_reason(case)
        try:
            volume = read_volume(path)
        except InputImageError as error:
            assert_one_line_refusal(error, path)
            assert reason is not None, f"a usable image was refused: {error}"
            return
        assert reason is None, f"an unusable image ({reason}) was accepted"
        assert_reads_exactly(volume, case)


@fuzz_settings(EXAMPLES["read: truncated or corrupted files"])
@given(case=cases(valid=True), mutation=st.sampled_from(["truncate", "flip header", "flip anywhere"]),
       data_file=st.booleans(), data=st.data())
def test_truncated_or_corrupted_files_are_never_read_wrong(case, mutation, data_file, data):
    GENERATED["read: truncated or corrupted files"] += 1
    with tempfile.TemporaryDirectory() as folder:
        path = write_case(case, Path(folder))
        target = path
        if path.suffix == ".mhd" and data_file:
            target = path.with_suffix(".zraw" if case.compress else ".raw")
        content = bytearray(target.read_bytes())
        if mutation == "truncate":
            content = content[: data.draw(st.integers(0, len(content) - 1), label="cut at")]
        else:
            span = min(len(content), 400) if mutation == "flip header" else len(content)
            flips = data.draw(st.lists(st.tuples(st.integers(0, span - 1), st.integers(0, 255)), min_size=1, max_size=4),
                              label="flips")
            for position, value in flips:
                content[position] = value
        target.write_bytes(bytes(content))
        try:
            volume = read_volume(path)
        except InputImageError as error:
            assert_one_line_refusal(error, path)
            return
        if mutation == "truncate":  # a cut file is refused or (a gzip trailer cut) reads the same
            assert_reads_exactly(volume, case)
        else:  # a flipped byte may change voxels or geometry, but what is accepted is a valid 3-D volume
            assert volume.array.ndim == 3 and np.isfinite(volume.array.astype(np.float64)).all()


# ------------------------------------------------------------------------- header fields ITK takes on trust
#
# A usable image (no voxel 0) is written, then one or two header fields get a drawn value, sometimes the file is
# also cut short or a float voxel becomes NaN. Each mutation says whether the result must be refused (a value
# ITK would replace or block on) and whether it may change how the bytes are read (the type, byte order,
# scaling or encoding). Whatever is accepted must be a valid 3-D volume, and unless the bytes were reinterpreted,
# every voxel read must be one of the written voxels: a zero-filled, shifted or uninitialised read shows.

SPECIAL_FLOATS = [0.0, -0.0, 1.0, -1.0, 2.5, 1e-30, 1e30, float("nan"), float("inf"), float("-inf")]
ODD_TEXT = ["nan", "inf", "-inf", "abc", "", "1e999", "-1", "0", "1 2", "1 2 3 4", "1,2,3"]
NIFTI_DATATYPES = [2, 4, 8, 16, 64, 256, 512, 768, 1024, 1280, 0, 1, 3, 7, 9999, -1]


@dataclass
class Mutation:
    """One header edit: a description, whether it must be refused, whether the voxels may be read differently."""

    what: str
    refuse: bool = False
    reinterprets: bool = False


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and np.isfinite(value)


@st.composite
def nifti_mutations(draw, dims: tuple[int, ...]) -> tuple[str, object, int | None, Mutation]:
    """(field, value, index, expectation) for a NIfTI-1 header written by ITK (qform and sform codes 1)."""
    field = draw(st.sampled_from(["sizeof_hdr", "dim", "datatype", "bitpix", "pixdim", "vox_offset", "scl_slope",
                                  "qform_code", "sform_code", "quatern", "qoffset", "srow_x", "magic"]))
    floats = st.sampled_from(SPECIAL_FLOATS) | st.floats(-1e6, 1e6, width=32)
    if field == "sizeof_hdr":
        value = draw(st.sampled_from([0, 1, 347, 349, 540, -1, 0x5C010000]) | st.integers(-2**31, 2**31 - 1))
        return field, value, None, Mutation(f"sizeof_hdr {value}", refuse=value != 348)
    if field == "dim":
        index = draw(st.integers(0, 7))
        value = draw(st.sampled_from([-1, 0, 1, 2, 3, 4, 7, 8, 32767, -32768]) | st.integers(-32768, 32767))
        if index == 0:  # fewer than 3 axes: a 2-D image; more: the extra sizes are 1
            return field, value, 0, Mutation(f"dim[0] {value}", refuse=not 3 <= value <= 7)
        # a smaller size reads a prefix of the data, a larger one needs more data than there is, 1 is 2-D
        refuse = index <= 3 and not 2 <= value <= dims[3 - index]
        return field, value, index, Mutation(f"dim[{index}] {value}", refuse=refuse)
    if field == "datatype":
        value = draw(st.sampled_from(NIFTI_DATATYPES))
        return field, value, None, Mutation(f"datatype {value}", refuse=value not in NIFTI_DATATYPE_BYTES,
                                            reinterprets=True)
    if field == "bitpix":  # not used by the NIfTI library (the datatype decides)
        value = draw(st.integers(-32768, 32767))
        return field, value, None, Mutation(f"bitpix {value}")
    if field == "pixdim":
        index, value = draw(st.integers(0, 7)), draw(floats)
        refuse = 1 <= index <= 3 and (not _finite(value) or value == 0)
        return field, value, index, Mutation(f"pixdim[{index}] {value}", refuse=refuse)
    if field == "vox_offset":  # the data start at 352 and end at the end of the file: any other offset is wrong
        value = draw(st.sampled_from([0.0, 100.0, 348.0, 351.0, 352.5, 356.0, 1e9, -1.0, float("nan"), float("inf")]))
        return field, value, None, Mutation(f"vox_offset {value}", refuse=True)
    if field == "scl_slope":  # 0, NaN and Inf mean 'no scaling'; other values scale the voxels
        value = draw(floats)
        return field, value, None, Mutation(f"scl_slope {value}", reinterprets=True)
    if field in ("qform_code", "sform_code"):
        value = draw(st.integers(-3, 5))
        return field, value, None, Mutation(f"{field} {value}")
    if field in ("quatern", "qoffset", "srow_x"):
        index = draw(st.integers(0, 3 if field == "srow_x" else 2))
        value = draw(floats)
        return field, value, index, Mutation(f"{field}[{index}] {value}", refuse=not _finite(value))
    value = draw(st.sampled_from([b"n+1\0", b"ni1\0", b"xxxx", b"\0\0\0\0", b"n+2\0"]))  # all read as one .nii
    return field, value, None, Mutation(f"magic {value!r}")


def metaimage_fields(header: str) -> list[str]:
    return [line.partition("=")[0].strip() for line in header.splitlines() if "=" in line]


@st.composite
def metaimage_mutations(draw, detached: bool) -> tuple[str, str | None, Mutation]:
    """(field, new value or None to delete, expectation) of a MetaImage header."""
    field = draw(st.sampled_from(["NDims", "DimSize", "ElementSpacing", "Offset", "TransformMatrix", "ElementType",
                                  "ElementNumberOfChannels", "HeaderSize", "CompressedData", "BinaryDataByteOrderMSB",
                                  "CenterOfRotation", "ElementDataFile"]))
    if field == "ElementDataFile":
        value = draw(st.sampled_from(["LIST", "LIST 2D", "slice%d.raw 1 3 1", "/dev/zero", "FIFO", "missing.raw", ".",
                                      "LOCAL"]))
        same = value == "LOCAL" and not detached
        return field, value, Mutation(f"ElementDataFile {value}", refuse=not same)
    if field in ("ElementType", "ElementNumberOfChannels", "CompressedData", "BinaryDataByteOrderMSB", "NDims"):
        value = draw(st.sampled_from(["MET_UCHAR", "MET_SHORT", "MET_FLOAT", "MET_DOUBLE", "MET_FOO", "True", "False",
                                      "2", "4", *ODD_TEXT]))
        return field, value, Mutation(f"{field} {value}", reinterprets=True)
    if field == "HeaderSize":
        value = draw(st.sampled_from(["-1", "0", "5", "-2", "abc"]))
        refuse = value in ("-2", "abc") or value == "5" and not detached
        return field, value, Mutation(f"HeaderSize {value}", refuse=refuse, reinterprets=True)
    if field == "DimSize":  # fewer voxels read a prefix of the data, more are truncated: either way no new value
        value = " ".join(draw(st.lists(st.sampled_from(["1", "2", "3", "5", "0", "-1", "abc", "99999"]),
                                       min_size=2, max_size=4)))
        words = value.split()
        refuse = len(words) != 3 or any(not w.isdigit() or int(w) < 1 for w in words) or "1" in words
        return field, value, Mutation(f"DimSize {value}", refuse=refuse)
    count = 9 if field == "TransformMatrix" else 3
    numbers = draw(st.lists(st.sampled_from(["0", "1", "-1", "0.5", "1e6"] + ODD_TEXT[:4]), min_size=count - 1,
                            max_size=count + 1))
    value = " ".join(numbers)
    garbage = len(numbers) != count or any(n in ODD_TEXT[:4] for n in numbers)
    return field, value, Mutation(f"{field} {value}", refuse=garbage)


@st.composite
def nrrd_mutations(draw, detached: bool) -> tuple[str, str, Mutation]:
    """(field, new value, expectation) of a NRRD header."""
    field = draw(st.sampled_from(["sizes", "type", "encoding", "endian", "space directions", "space origin",
                                  "kinds", "byte skip", "line skip"] + (["data file"] * 3 if detached else [])))
    if field == "data file":
        value = draw(st.sampled_from(["LIST", "slice%d.raw 1 3 1", "/dev/zero", "FIFO", "missing.raw", "."]))
        return field, value, Mutation(f"data file {value}", refuse=True)
    if field == "space directions":
        vectors = [draw(st.sampled_from(["(1,0,0)", "(0,1,0)", "(0,0,2.5)", "(nan,0,0)", "(inf,0,0)", "none",
                                         "(1,0)", "(0,0,0)"])) for _ in range(draw(st.integers(2, 4)))]
        bad = any("nan" in v or "inf" in v or v == "none" for v in vectors)
        return field, " ".join(vectors), Mutation(f"space directions {vectors}", refuse=bad)
    if field == "space origin":
        value = draw(st.sampled_from(["(1,2,3)", "(nan,2,3)", "(inf,2,3)", "(1,2)", "(a,b,c)", "()"]))
        return field, value, Mutation(f"space origin {value}", refuse=value != "(1,2,3)")
    if field == "sizes":
        value = " ".join(draw(st.lists(st.sampled_from(["1", "2", "3", "5", "0", "-1", "abc"]), min_size=2,
                                       max_size=4)))
        words = value.split()
        refuse = len(words) != 3 or any(not w.isdigit() or int(w) < 1 for w in words) or "1" in words
        return field, value, Mutation(f"sizes {value}", refuse=refuse)
    value = draw(st.sampled_from(["uchar", "short", "float", "double", "raw", "gzip", "ascii", "hex", "little",
                                  "big", "domain domain domain", "vector domain domain", "list domain domain", "3",
                                  "-1", *ODD_TEXT]))
    return field, value, Mutation(f"{field} {value}", reinterprets=True)


def _edit_metaimage(path: Path, field: str, value: str | None) -> None:
    """Replace, add (before ElementDataFile, which ends the header) or with None delete a MetaImage field."""
    data = path.read_bytes()
    start = data.index(b"ElementDataFile")
    stop = data.index(b"\n", start) + 1
    lines = data[:start].decode("latin-1").splitlines()
    last = data[start:stop].decode("latin-1")
    if field == "ElementDataFile":
        last = f"ElementDataFile = {value}\n"
    else:
        lines = [line for line in lines if line.partition("=")[0].strip() != field]
        lines += [] if value is None else [f"{field} = {value}"]
    path.write_bytes("".join(f"{line}\n" for line in lines).encode("latin-1") + last.encode("latin-1") + data[stop:])


def _edit_nrrd(path: Path, field: str, value: str) -> None:
    """Replace or add a field of a NRRD header (attached: up to the blank line; detached: the whole file)."""
    data = path.read_bytes()
    stop = data.index(b"\n\n") if path.suffix == ".nrrd" else len(data.rstrip(b"\n"))
    lines = [line for line in data[:stop].decode("latin-1").split("\n") if line.partition(": ")[0] != field]
    lines.insert(1, f"{field}: {value}")
    path.write_bytes("\n".join(lines).encode("latin-1") + (data[stop:] if path.suffix == ".nrrd" else b"\n"))


def _nifti_file(path: Path, edit) -> None:
    """Apply ``edit`` to the uncompressed bytes of a .nii or .nii.gz file."""
    compressed = path.name.endswith(".gz")
    data = gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()
    data = edit(data)
    path.write_bytes(gzip.compress(data) if compressed else data)


def _poison(path: Path, case: Case) -> bool:
    """Make one float voxel NaN in the data of a NIfTI file (False when the voxels are not floats)."""
    if not path.name.startswith("case.nii") or case.array.dtype.kind != "f":
        return False
    itemsize = case.array.dtype.itemsize
    _nifti_file(path, lambda data: data[:352] + np.full(1, np.nan, case.array.dtype).tobytes()
                + data[352 + itemsize:])
    return True


@fuzz_settings(EXAMPLES["read: header fields"])
@given(case=cases(valid=True, formats=HEADER_FORMATS), data=st.data())
def test_header_fields_itk_would_replace_are_refused_and_nothing_is_read_wrong(case, data):
    GENERATED["read: header fields"] += 1
    case.array[case.array == 0] = 1  # so that a zero-filled read shows
    assume(case.array.min() != case.array.max())
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root)
        path = write_case(case, folder)
        edits: dict[tuple, Mutation] = {}  # a field edited twice keeps the second value only
        fifo = folder / "data.fifo"
        for _ in range(data.draw(st.integers(1, 2), label="how many fields")):
            if path.name.endswith((".nii", ".nii.gz")):
                field, value, index, mutation = data.draw(nifti_mutations(case.array.shape), label="NIfTI field")
                _nifti_file(path, partial(edit_nifti_header, field=field, value=value, index=index))
                field = (field, index)
            elif path.suffix in (".mha", ".mhd"):
                field, value, mutation = data.draw(metaimage_mutations(path.suffix == ".mhd"), label="MetaImage field")
                _edit_metaimage(path, field, str(fifo) if value == "FIFO" else value)
            else:
                field, value, mutation = data.draw(nrrd_mutations(path.suffix == ".nhdr"), label="NRRD field")
                _edit_nrrd(path, field, str(fifo) if value == "FIFO" else value)
            edits[field] = mutation
        mutations = list(edits.values())
        extra = data.draw(st.sampled_from(["none", "none", "truncate", "poison"]), label="and")
        if extra == "truncate":  # a cut detached header may lose the fields that say how to read the data
            content = path.read_bytes()
            path.write_bytes(content[: data.draw(st.integers(0, len(content) - 1), label="cut at")])
            mutations.append(Mutation("truncated", reinterprets=path.suffix in (".mhd", ".nhdr")))
        if extra == "poison" and _poison(path, case):
            mutations.append(Mutation("a NaN voxel", refuse=True))
        with fifo_watch(fifo) as blocked:
            try:
                volume = read_volume(path)
            except InputImageError as error:
                assert_one_line_refusal(error, path)
                assert not blocked, "a FIFO was opened"
                return
        assert not blocked, "a FIFO was opened"
        refusing = [m.what for m in mutations if m.refuse]
        assert not refusing, f"accepted although {refusing}"
        assert volume.array.ndim == 3 and min(volume.array.shape) >= 2
        assert np.isfinite(volume.array.astype(np.float64)).all() and np.isfinite(volume.ijk_to_lps()).all()
        if not any(m.reinterprets for m in mutations):
            written = np.unique(case.array.astype(np.float64))
            read = np.unique(volume.array.astype(np.float64))
            assert np.isin(read, written).all(), (f"voxels never written were read after {[m.what for m in mutations]}:"
                                                  f" {read[~np.isin(read, written)][:5]}")


def assert_slices_in_place(volume: Volume, original: np.ndarray, spacing, origin) -> None:
    """Every slice read is a written slice, at that slice's own position (a series may lose slices, never shift one)."""
    i, j, count = volume.shape_ijk
    assert (i, j) == original.shape[:0:-1]
    np.testing.assert_allclose(volume.spacing[:2], spacing[:2], atol=1e-3)
    np.testing.assert_allclose(volume.direction, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(volume.origin[:2], origin[:2], atol=1e-3)
    for k in range(count):
        index = (volume.origin[2] + k * volume.spacing[2] - origin[2]) / spacing[2]
        assert abs(index - round(index)) < 1e-3 and 0 <= round(index) < len(original), (k, index)
        assert np.array_equal(volume.array[k], original[round(index)])


@fuzz_settings(EXAMPLES["read: DICOM series"])
@given(slices=st.integers(1, 5), rows=st.integers(2, 7), cols=st.integers(2, 7),
       dtype=st.sampled_from(["int16", "uint16", "uint8"]), spacing=st.sampled_from([(0.7, 0.7, 2.0), (1.0, 0.5, 3.0)]),
       mutation=st.sampled_from(["none", "second series", "missing slice", "truncate", "flip", "tilted slice",
                                 "other pixel spacing"]), data=st.data())
def test_dicom_series_read_exactly_or_are_refused(slices, rows, cols, dtype, spacing, mutation, data):
    GENERATED["read: DICOM series"] += 1
    origin = (-100.0, -80.0, 40.0)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    info = np.iinfo(dtype)
    array = rng.integers(max(info.min, -1000), min(info.max, 1000), size=(slices, rows, cols), dtype=dtype, endpoint=True)
    array.flat[:2] = (max(info.min, -1000), min(info.max, 1000))  # never constant
    usable = min(array.shape) >= 2
    with tempfile.TemporaryDirectory() as root:
        folder = write_series(Path(root) / "series", array, spacing=spacing, origin=origin, uid="1.2.3.4.1")
        files = sorted(folder.iterdir())
        if mutation == "second series":
            other = write_series(Path(root) / "other", array[:1].repeat(3, axis=0), spacing=spacing, uid="1.2.3.4.2")
            for file in other.iterdir():
                file.rename(folder / f"b_{file.name}")
            with pytest.raises(InputImageError, match="--series-uid") as caught:
                read_volume(folder)
            assert "1.2.3.4.1" in str(caught.value) and "1.2.3.4.2" in str(caught.value)
            assert_one_line_refusal(caught.value, folder)
            assert read_volume(folder, series_uid="1.2.3.4.2").shape_ijk == (cols, rows, 3)
            return
        if mutation == "missing slice" and slices >= 4:  # with 3 or more left, the gap shows
            files[data.draw(st.integers(1, slices - 2), label="dropped")].unlink()
            with pytest.raises(InputImageError, match="not evenly spaced") as caught:
                read_volume(folder)
            assert_one_line_refusal(caught.value, folder)
            return
        if mutation == "missing slice" and slices == 3:  # two slices left: evenly spaced, correctly placed
            files[1].unlink()
        if mutation in ("tilted slice", "other pixel spacing") and slices >= 2:  # ITK would stack it with the rest
            odd = files[data.draw(st.integers(0, slices - 1), label="odd slice")]
            if mutation == "tilted slice":
                rewrite_slice(odd, tags={"0020|0037": "1\\0\\0\\0\\0.8\\-0.6"})
            else:
                rewrite_slice(odd, spacing=(spacing[0] * 1.5, spacing[1], spacing[2]))
            with pytest.raises(InputImageError, match="differ in") as caught:
                read_volume(folder)
            assert_one_line_refusal(caught.value, folder)
            return
        if mutation in ("truncate", "flip"):
            target = files[data.draw(st.integers(0, len(files) - 1), label="file")]
            content = bytearray(target.read_bytes())
            if mutation == "truncate":
                content = content[: data.draw(st.integers(0, len(content) - 1), label="cut at")]
            else:
                for position, value in data.draw(st.lists(st.tuples(st.integers(0, len(content) - 1),
                                                                    st.integers(0, 255)), min_size=1, max_size=4)):
                    content[position] = value
            target.write_bytes(bytes(content))
        try:
            volume = read_volume(folder)
        except InputImageError as error:
            assert_one_line_refusal(error, folder)
            assert mutation in ("truncate", "flip") or not usable, str(error)
            return
        if mutation == "flip":
            assert volume.array.ndim == 3
            return
        assert_slices_in_place(volume, array, spacing, origin)
        assert mutation != "none" or volume.shape_ijk[2] == slices


@st.composite
def in_memory_volumes(draw) -> tuple[Volume, str | None]:
    """A `Volume` of any voxel type, shape, spacing and direction, and why `detect` must refuse it (or None)."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.integers(1, 12)) for _ in range(3))
    array = draw(voxel_arrays(shape, dtype))
    spacing = tuple(draw(st.sampled_from(VALID_MAGNITUDES + BAD_MAGNITUDES)) * draw(st.sampled_from([1, 1, 1, -1]))
                    for _ in range(3))
    direction = draw(directions(["identity", "rotation", "rotation", "reflection", "skew", "singular"]))
    case = Case(array, 1, spacing, direction, (3.0, -7.5, 12.0))
    reason = refusal_reason(case)
    if reason is None and min(spacing) < 0:
        reason = "negative spacing"  # a Volume states direction and spacing apart: spacing must be positive
    return Volume(array, spacing, case.origin, direction, name="fuzz"), reason


@fuzz_settings(EXAMPLES["detect: in-memory volumes"])
@given(generated=in_memory_volumes())
def test_detect_returns_lesions_on_the_input_grid_or_one_error(generated, fast_model):
    GENERATED["detect: in-memory volumes"] += 1
    volume, reason = generated
    try:
        result = detect(volume, fast_model[1], device="cpu")
    except LesionDetectError as error:
        assert "\n" not in str(error)
        assert reason is not None or "implausible" in str(error), f"a usable volume was refused: {error}"
        return
    assert reason is None, f"an unusable volume ({reason}) was accepted"
    shape = volume.array.shape
    assert result.label_map.shape == shape and result.probability.shape == shape
    assert result.probability.dtype == np.float32 and np.all((result.probability >= 0) & (result.probability <= 1))
    assert int(result.label_map.max()) == len(result.lesions)
    assert [lesion.id for lesion in result.lesions] == list(range(1, len(result.lesions) + 1))
    for lesion in result.lesions:
        assert np.count_nonzero(result.label_map == lesion.id) == lesion.voxel_count > 0
        assert all(0 <= low <= high < size for low, high, size in
                   zip(lesion.bbox_ijk_min, lesion.bbox_ijk_max, volume.shape_ijk))
    assert result.volume is volume


# ------------------------------------------------------------------------------------- the command line


def lesiondetect(*args, models: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LESIONDETECT_MODELS": str(models)}
    return subprocess.run([sys.executable, "-m", "LesionDetectLib", *map(str, args)], capture_output=True,
                          encoding="utf-8", env=env, timeout=CLI_TIMEOUT_S)


def in_process_outcome(path: Path, model) -> LesionDetectError | None:
    """The error the library gives for ``path`` (None: it succeeds), as ``detect --force-modality`` runs it."""
    try:
        detect(read_volume(path), model, device="cpu", force_modality=True)
    except LesionDetectError as error:
        return error
    return None


@fuzz_settings(EXAMPLES["command line: batches of generated images"], deadline_s=None)
@given(generated=st.tuples(cases(), cases(), cases(), cases(valid=True), cases(valid=True)).map(list))
def test_command_line_matches_the_library_case_by_case(generated, fast_model, tmp_path_factory):
    """One `detect` run over a list of generated files and an empty folder: same outcome per case as in-process."""
    GENERATED["command line: batches of generated images"] += 1
    GENERATED["command line: inputs in those batches"] += len(generated) + 1
    bundle, model = fast_model
    root = tmp_path_factory.mktemp("cli-fuzz")
    inputs = [write_case(case, root, stem=f"case{n}") for n, case in enumerate(generated)]
    (root / "empty").mkdir()
    inputs.append(root / "empty")
    expected = {path: in_process_outcome(path, model) for path in inputs}
    listing = root / "cases.txt"
    listing.write_text("".join(f"{path}\n" for path in inputs))
    out = root / "out"
    done = lesiondetect("detect", listing, "-o", out, "--model", bundle, "--progress", "none", "--quiet",
                        "--device", "cpu", "--force-modality", models=root / "no-models")
    failures = [error for error in expected.values() if error is not None]
    assert done.stdout == ""
    assert sorted(done.stderr.splitlines()) == sorted(f"lesiondetect: failed: {e}" for e in failures), done.stderr
    codes = {error.exit_code for error in failures}
    assert done.returncode == (0 if not codes else codes.pop() if len(codes) == 1 else 1), done.stderr
    written = {p.name for p in out.iterdir()}
    stems = {path.name.split(".")[0] for path, error in expected.items() if error is None}
    assert written == {f"{stem}{suffix}" for stem in stems
                       for suffix in (".seg.nrrd", ".mrk.json", ".lesions.csv", ".lesions.json")}


def test_command_line_dicom_folder_with_several_series(fast_model, tmp_path):
    """Without --series-uid: exit 3, one line listing the series; with it: that series' outputs."""
    bundle, _ = fast_model
    array = np.full((4, 12, 14), -1000, np.int16)
    array[:, 3:9, 4:10] = 80
    folder = write_series(tmp_path / "two-series", array, uid="1.2.3.4.1")
    for file in write_series(tmp_path / "other", array[:3], uid="1.2.3.4.2").iterdir():
        file.rename(folder / f"b_{file.name}")
    out = tmp_path / "out"
    refused = lesiondetect("detect", folder, "-o", out, "--model", bundle, "--progress", "none", models=tmp_path)
    assert refused.returncode == 3
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("lesiondetect: error:")
    assert "1.2.3.4.1 (4 files)" in refused.stderr and "1.2.3.4.2 (3 files)" in refused.stderr
    assert list(out.iterdir()) == []
    chosen = lesiondetect("detect", folder, "-o", out, "--model", bundle, "--progress", "none", "--quiet",
                          "--series-uid", "1.2.3.4.2", models=tmp_path)
    assert chosen.returncode == 0 and chosen.stderr == "", chosen.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"two-series{s}" for s in (".seg.nrrd", ".mrk.json", ".lesions.csv", ".lesions.json"))
    assert sitk.ReadImage(str(out / "two-series.seg.nrrd")).GetSize()[2] == 3
    GENERATED["command line: DICOM folder with two series"] += 2


def test_empty_and_junk_folders_are_refused(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "README").write_text("not an image")
    (tmp_path / "junk" / "DICOMDIR").write_bytes(os.urandom(300))
    with pytest.raises(InputImageError, match="no DICOM series") as caught:
        read_volume(tmp_path / "junk")
    assert_one_line_refusal(caught.value, tmp_path / "junk")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputImageError, match="no DICOM series") as caught:
        read_volume(tmp_path / "empty")
    assert_one_line_refusal(caught.value, tmp_path / "empty")


def test_generated_case_count():
    """Runs last in this file (pytest keeps file order): how many generated cases were checked."""
    total = sum(count for kind, count in GENERATED.items() if kind != "command line: batches of generated images")
    report = ", ".join(f"{kind}: {count}" for kind, count in GENERATED.items())
    print(f"\n{total} generated cases ({report})")
    for kind, budget in EXAMPLES.items():  # a property that ran saw its whole budget of examples
        assert GENERATED[kind] == 0 or GENERATED[kind] >= budget, report
