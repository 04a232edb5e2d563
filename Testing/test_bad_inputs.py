"""Every unusable input gets one clear error with its own exit code."""

from __future__ import annotations

import os
import re
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import edit_nifti_header, fifo_watch, make_volume

from LesionDetectLib.errors import InputImageError
from LesionDetectLib.io import read_volume, validate_volume


def write(tmp_path, image, name="bad.nrrd"):
    path = tmp_path / name
    sitk.WriteImage(image, str(path))
    return path


def test_missing_file(tmp_path):
    with pytest.raises(InputImageError, match="no such file"):
        read_volume(tmp_path / "absent.nii.gz")


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.nii.gz"
    path.write_bytes(b"this is not a NIfTI file")
    with pytest.raises(InputImageError, match="not a readable image"):
        read_volume(path)


def test_truncated_nifti(tmp_path):
    path = write(tmp_path, make_volume().to_sitk(), "cut.nii")
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(InputImageError):
        read_volume(path)


def test_two_d_image(tmp_path):
    path = write(tmp_path, sitk.GetImageFromArray(np.arange(100, dtype=np.int16).reshape(10, 10)))
    with pytest.raises(InputImageError, match="2-D"):
        read_volume(path)


def test_four_d_image(tmp_path):
    path = write(tmp_path, sitk.GetImageFromArray(np.random.rand(3, 4, 5, 6).astype(np.float32), isVector=False))
    with pytest.raises(InputImageError, match="4-D"):
        read_volume(path)


def test_vector_image(tmp_path):
    path = write(tmp_path, sitk.GetImageFromArray(np.random.rand(4, 5, 6, 3).astype(np.float32), isVector=True))
    with pytest.raises(InputImageError, match="components"):
        read_volume(path)


def test_constant_volume():
    volume = make_volume(seed=None, lesions=())
    with pytest.raises(InputImageError, match="constant"):
        validate_volume(volume)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_volume(bad):
    volume = make_volume()
    volume.array[1, 2, 3] = bad
    with pytest.raises(InputImageError, match="NaN or infinite"):
        validate_volume(volume)


@pytest.mark.parametrize("spacing", [(0.0, 1.0, 1.0), (1.0, 1.0, 1e6), (1e-9, 1, 1)])
def test_absurd_spacing(spacing):
    with pytest.raises(InputImageError, match="spacing"):
        validate_volume(make_volume(spacing=spacing))


def test_non_orthonormal_direction():
    with pytest.raises(InputImageError, match="orthonormal"):
        validate_volume(make_volume(direction=np.array([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]])))


def test_empty_folder(tmp_path):
    with pytest.raises(InputImageError, match="no DICOM series"):
        read_volume(tmp_path)


def test_input_error_exit_code():
    assert InputImageError.exit_code == 3


def test_truncated_compressed_nifti(tmp_path):
    path = write(tmp_path, make_volume().to_sitk(), "cut.nii.gz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputImageError):
        read_volume(path)


# ------------------------------------------------------------- what ITK papers over (issue 20, items 1-5)


def ramp_volume(shape_kji=(16, 20, 20)) -> sitk.Image:
    """Float voxels 1, 2, 3, …: none is 0, so a zero-filled or shifted read shows."""
    image = sitk.GetImageFromArray(np.arange(1, np.prod(shape_kji) + 1, dtype=np.float32).reshape(shape_kji))
    image.SetSpacing((0.5, 0.6, 0.7))
    image.SetOrigin((1.0, 2.0, 3.0))
    return image


def nifti_bytes(tmp_path, image=None) -> bytes:
    path = tmp_path / "written.nii"
    sitk.WriteImage(ramp_volume() if image is None else image, str(path))
    return path.read_bytes()


def assert_refused(path, match: str | None = None) -> InputImageError:
    with pytest.raises(InputImageError, match=match) as caught:
        read_volume(path)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(str(path)), caught.value
    assert caught.value.exit_code == 3
    return caught.value


@pytest.mark.parametrize("sizeof_hdr", [0, 1, 347, 349, 540, -1, 10**6])
def test_nifti_checks_do_not_depend_on_sizeof_hdr(tmp_path, sizeof_hdr):
    """Item 1: ITK reads a NIfTI whatever its sizeof_hdr says; a truncated one or one with NaN is still refused."""
    data = edit_nifti_header(nifti_bytes(tmp_path), "sizeof_hdr", sizeof_hdr)
    cut = tmp_path / "cut.nii"
    cut.write_bytes(data[: len(data) // 2])
    assert_refused(cut)
    nan = tmp_path / "nan.nii"
    nan.write_bytes(data[:400] + struct.pack("<f", float("nan")) + data[404:])
    assert_refused(nan)


@pytest.mark.parametrize("name", ["cut", "cut.hdr", "cut.NII"])
def test_truncated_nifti_is_refused_whatever_its_file_name(tmp_path, name):
    """ITK recognises a NIfTI by its content: the checks must not depend on the suffix either."""
    data = nifti_bytes(tmp_path)
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    assert_refused(tmp_path / name)


def test_nifti_data_size_comes_from_the_datatype_not_bitpix(tmp_path):
    data = edit_nifti_header(nifti_bytes(tmp_path), "bitpix", 8)  # float32 data claiming 8 bits per voxel
    (tmp_path / "cut.nii").write_bytes(data[:-100])
    assert_refused(tmp_path / "cut.nii", "truncated")


@pytest.mark.parametrize(("field", "index", "value", "message"), [
    ("vox_offset", None, 0.0, "vox_offset"),
    ("vox_offset", None, 100.0, "vox_offset"),
    ("vox_offset", None, float("nan"), "vox_offset"),
    ("vox_offset", None, float("inf"), "vox_offset"),
    ("pixdim", 1, 0.0, "pixdim"),
    ("pixdim", 1, float("nan"), "pixdim"),
    ("pixdim", 2, float("inf"), "pixdim"),
    ("qoffset", 0, float("inf"), "qoffset"),
    ("quatern", 1, float("nan"), "quatern"),
    ("srow_x", 3, float("inf"), "srow"),
    ("dim", 2, -1, "dim"),
    ("dim", 3, 0, "dim"),
])
def test_nifti_header_fields_itk_would_replace_are_refused(tmp_path, field, index, value, message):
    """ITK reads pixdim 0/NaN/inf as spacing 1, a vox_offset inside the header from byte 348, a non-finite
    qoffset or srow as 0, and a negative dim[2] as a 20×1×16 image: each is refused instead."""
    path = tmp_path / "edited.nii"
    path.write_bytes(edit_nifti_header(nifti_bytes(tmp_path), field, value, index))
    assert_refused(path, message)


def test_nifti_with_unset_scaling_still_reads_exactly(tmp_path):
    """nibabel writes NaN into scl_slope/scl_inter for 'no scaling': such files are fine."""
    data = edit_nifti_header(edit_nifti_header(nifti_bytes(tmp_path), "scl_slope", float("nan")), "scl_inter",
                             float("nan"))
    (tmp_path / "unscaled.nii").write_bytes(data)
    volume = read_volume(tmp_path / "unscaled.nii")
    assert np.array_equal(volume.array, sitk.GetArrayFromImage(ramp_volume()))


def test_nifti_header_and_image_pair_is_refused(tmp_path):
    """A .hdr names its voxels in a separate .img that ITK reads without checking its size."""
    data = edit_nifti_header(nifti_bytes(tmp_path), "magic", b"ni1\0")
    (tmp_path / "pair.hdr").write_bytes(data[:352])
    (tmp_path / "pair.img").write_bytes(data[352:400])
    assert_refused(tmp_path / "pair.hdr", "separate")


@pytest.mark.parametrize("suffix", [".vtk", ".tif"])
def test_formats_other_than_the_documented_ones_are_refused(tmp_path, suffix):
    path = tmp_path / f"image{suffix}"
    sitk.WriteImage(sitk.Cast(ramp_volume(), sitk.sitkInt16), str(path))
    assert_refused(path, "NIfTI, NRRD, MetaImage")


def test_fifo_input_is_refused_without_opening_it(tmp_path):
    """Item 2: ITK's open() of a FIFO never returns (not even on SIGTERM)."""
    path = tmp_path / "scan.nii.gz"
    with fifo_watch(path) as blocked:
        started = time.monotonic()
        assert_refused(path, "not a regular file")
        assert time.monotonic() - started < 5 and not blocked


def test_character_device_input_is_refused(tmp_path):
    assert_refused(Path("/dev/zero"), "not a regular file")


def detached_header(tmp_path, kind: str, data_file: Path) -> Path:
    """A detached NRRD (.nhdr) or MetaImage (.mhd) header of the ramp volume naming ``data_file``."""
    if kind == "nhdr":
        sitk.WriteImage(ramp_volume(), str(tmp_path / "full.nrrd"))
        header = (tmp_path / "full.nrrd").read_bytes().partition(b"\n\n")[0].decode()
        text = f"{header}\ndata file: {data_file}\n"
    else:
        text = f"{metaimage_header(tmp_path)}ElementDataFile = {data_file}\n"
    (tmp_path / f"scan.{kind}").write_text(text)
    return tmp_path / f"scan.{kind}"


def metaimage_header(tmp_path) -> str:
    sitk.WriteImage(ramp_volume(), str(tmp_path / "full.mhd"))
    return (tmp_path / "full.mhd").read_text().rpartition("ElementDataFile")[0]


@pytest.mark.parametrize("kind", ["nhdr", "mhd"])
@pytest.mark.parametrize("target", ["fifo", "/dev/zero", "/dev/null"])
def test_detached_data_file_that_is_not_a_regular_file_is_refused(tmp_path, kind, target):
    data_file = tmp_path / "data.raw" if target == "fifo" else Path(target)
    header = detached_header(tmp_path, kind, data_file)
    if target != "fifo":
        assert_refused(header, "not a regular file")
        return
    with fifo_watch(data_file) as blocked:
        assert_refused(header, "not a regular file")
        assert not blocked


def test_folder_holding_a_fifo_is_refused_without_opening_it(tmp_path):
    """GDCM opens every file of a folder it scans for DICOM series."""
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    with fifo_watch(folder / "slice1.dcm") as blocked:
        assert_refused(folder, "not a regular file")
        assert not blocked


def test_folder_of_images_with_a_fifo_expands_to_the_images_without_opening_it(tmp_path):
    from LesionDetectLib.inputs import expand_inputs

    sitk.WriteImage(ramp_volume(), str(tmp_path / "a.nrrd"))
    with fifo_watch(tmp_path / "b.nii") as blocked:
        assert expand_inputs([str(tmp_path)]) == [tmp_path / "a.nrrd", tmp_path / "b.nii"]
        assert_refused(tmp_path / "b.nii", "not a regular file")
        assert not blocked


def test_folder_that_cannot_be_listed_is_one_clear_error(tmp_path, unlistable, capsys):
    """Item 3: as root every folder can be listed, so the refusal is simulated (a real chmod 000 below)."""
    from LesionDetectLib import cli

    folder = tmp_path / "locked"
    folder.mkdir()
    unlistable(folder)
    code = cli.main(["detect", str(folder), "-o", str(tmp_path / "out"), "--progress", "none"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert err == f"lesiondetect: error: {folder}: cannot be read (Permission denied)\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can list any folder")
def test_folder_without_read_permission_is_one_clear_error(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    try:
        assert_refused(folder, "Permission denied")
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_single_slice_images_are_refused_as_2d(tmp_path, suffix):
    """Item 4: a 20×20×1 image is 2-D."""
    path = tmp_path / f"slice{suffix}"
    sitk.WriteImage(ramp_volume((1, 20, 20)), str(path))
    assert_refused(path, "2-D")


def test_metaimage_offset_that_is_not_finite_is_refused(tmp_path):
    """Item 5: MetaIO reads 'Offset = inf' (or nan, or a word) as 0."""
    path = tmp_path / "scan.mha"
    sitk.WriteImage(ramp_volume(), str(path))
    data = path.read_bytes()
    for value in (b"inf 2 3", b"nan 2 3", b"abc 2 3", b"1"):
        path.write_bytes(data.replace(b"Offset = 1 2 3", b"Offset = " + value))
        assert_refused(path, "Offset")


@pytest.mark.parametrize("data_file", ["LIST", "LIST 2D", "slice%03d.raw 1 16 1"])
def test_metaimage_data_in_several_files_is_refused(tmp_path, data_file):
    """Item 5: 'ElementDataFile = LIST' with no files returns an uninitialised buffer."""
    (tmp_path / "scan.mhd").write_text(f"{metaimage_header(tmp_path)}ElementDataFile = {data_file}\n")
    assert_refused(tmp_path / "scan.mhd", "several files")


def test_nrrd_axis_without_a_direction_is_refused(tmp_path):
    """ITK invents a unit spacing and direction for a 'none' space direction of a spatial axis."""
    path = tmp_path / "scan.nrrd"
    sitk.WriteImage(ramp_volume(), str(path))
    header, _, data = path.read_bytes().partition(b"\n\n")
    header = re.sub(rb"space directions: \([^)]*\)", b"space directions: none", header)
    path.write_bytes(header + b"\n\n" + data)
    assert_refused(path, "direction")


def test_reference_masks_get_the_same_checks(tmp_path):
    """Evaluation and training read label masks with their own readers: a FIFO or a truncated NIfTI is refused."""
    from LesionDetectLib.errors import DatasetError
    from LesionDetectLib.io import read_mask

    with fifo_watch(tmp_path / "label.nii.gz") as blocked:
        with pytest.raises(DatasetError, match="not a regular file"):
            read_mask(tmp_path / "label.nii.gz")
        assert not blocked
    data = nifti_bytes(tmp_path)
    (tmp_path / "cut.nii").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="truncated"):
        read_mask(tmp_path / "cut.nii")
