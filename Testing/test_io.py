"""`io`: reading volumes (image files and DICOM series) and masks keeps their geometry exactly."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SHARED_DATA, make_volume, needs_shared_data, rewrite_slice, write_series
from evaluation_cases import rotation

from LesionDetectLib.errors import InputImageError
from LesionDetectLib.io import dicom_series, read_mask, read_volume, volume_stem


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_file_round_trip_keeps_geometry(tmp_path, suffix):
    volume = make_volume()
    path = tmp_path / f"case{suffix}"
    sitk.WriteImage(volume.to_sitk(), str(path))
    back = read_volume(path)
    assert back.name == "case"
    assert back.same_geometry(volume, tolerance=1e-4)
    np.testing.assert_allclose(back.array, volume.array)


def test_volume_stem_names():
    assert volume_stem("a/CT.nii.gz") == "CT"
    assert volume_stem("a/b.c.nrrd") == "b.c"
    assert volume_stem("x/series_dir") == "series_dir"


@needs_shared_data
def test_real_nifti_direction_is_kept():
    path = SHARED_DATA / "real-ct-nifti" / "ct_3mm.nii.gz"
    volume = read_volume(path)
    image = sitk.ReadImage(str(path))
    np.testing.assert_allclose(volume.direction.ravel(), image.GetDirection())
    assert volume.modality == "CT"
    assert volume.shape_ijk == image.GetSize()



def test_read_mask_of_a_3d_ras_seg_nrrd_keeps_labels_and_geometry(tmp_path):
    nrrd = pytest.importorskip("nrrd")
    data = np.zeros((4, 5, 6), np.uint8)  # NRRD axis order i, j, k
    data[1, 2, 3] = 2
    header = {"space": "right-anterior-superior", "space directions": np.diag([0.5, 1.0, 2.0]) @ rotation(10).T,
              "space origin": np.array([10.0, 20.0, 30.0]), "kinds": ["domain"] * 3}
    nrrd.write(str(tmp_path / "a.seg.nrrd"), data, header)
    mask = read_mask(tmp_path / "a.seg.nrrd", keep_labels=True)
    assert mask.array.shape == (6, 5, 4) and mask.array[3, 2, 1] == 2 and mask.array.sum() == 2
    np.testing.assert_allclose(mask.origin, (-10.0, -20.0, 30.0))
    np.testing.assert_allclose(mask.spacing, (0.5, 1.0, 2.0))
    np.testing.assert_allclose(mask.direction, np.diag([-1.0, -1.0, 1.0]) @ rotation(10))


def test_read_mask_of_a_layered_seg_nrrd_merges_its_layers(tmp_path):
    nrrd = pytest.importorskip("nrrd")
    layered = np.zeros((2, 4, 5, 6), np.uint8)
    layered[0, 1, 1, 1] = 1
    layered[1, 1, 1, 1] = 3  # overlapping segments in two layers
    layered[1, 3, 4, 5] = 1
    header = {"space": "left-posterior-superior", "space directions": np.vstack([[np.nan] * 3, np.eye(3)]),
              "space origin": np.zeros(3), "kinds": ["list", "domain", "domain", "domain"]}
    nrrd.write(str(tmp_path / "b.seg.nrrd"), layered, header)
    mask = read_mask(tmp_path / "b.seg.nrrd")
    assert mask.array.shape == (6, 5, 4) and mask.array.sum() == 2 and mask.array[5, 4, 3] == 1



def ct_array(shape=(6, 32, 40)):
    array = np.full(shape, -1000, np.int16)
    array[:, 8:24, 8:32] = 40
    return array


def test_written_series_reads_with_geometry(tmp_path):
    folder = write_series(tmp_path / "series", ct_array())
    volume = read_volume(folder)
    assert volume.name == "series"
    assert volume.shape_ijk == (40, 32, 6)
    np.testing.assert_allclose(volume.spacing, (0.7, 0.7, 2.0), atol=1e-4)
    np.testing.assert_allclose(volume.origin, (-100.0, -80.0, 40.0), atol=1e-3)
    assert volume.modality == "CT"
    assert int(volume.array.min()) == -1000


def test_folder_with_two_series_asks_to_choose(tmp_path):
    write_series(tmp_path / "both", ct_array(), uid="1.2.3.4.1")
    write_series(tmp_path / "other", ct_array((4, 32, 40)), uid="1.2.3.4.2")
    for path in (tmp_path / "other").iterdir():
        path.rename(tmp_path / "both" / f"b_{path.name}")
    with pytest.raises(InputImageError, match="--series-uid"):
        read_volume(tmp_path / "both")
    assert read_volume(tmp_path / "both", series_uid="1.2.3.4.2").shape_ijk[2] == 4
    assert set(dicom_series(tmp_path / "both")) == {"1.2.3.4.1", "1.2.3.4.2"}


@needs_shared_data
def test_real_ct_series():
    volume = read_volume(SHARED_DATA / "real-ct-dicom")
    assert volume.shape_ijk == (512, 512, 20)
    np.testing.assert_allclose(volume.spacing, (0.977, 0.977, 2.0), atol=1e-3)
    np.testing.assert_allclose(volume.origin, (-249.5, -437.5, -804.5), atol=0.5)
    assert volume.modality == "CT"


def test_folder_with_one_slice_is_refused_as_2d(tmp_path):
    """Issue 20, item 4: one slice is a 2-D image."""
    folder = write_series(tmp_path / "one", ct_array((1, 32, 40)))
    with pytest.raises(InputImageError, match="2-D") as caught:
        read_volume(folder)
    assert str(caught.value).startswith(str(folder)) and "\n" not in str(caught.value)


def test_series_whose_slices_differ_in_orientation_is_refused(tmp_path):
    """Issue 20, item 5: ITK stacks such slices without a word; the message names the series and orientations."""
    folder = write_series(tmp_path / "mixed", ct_array(), uid="1.2.3.4.7")
    rewrite_slice(sorted(folder.iterdir())[3], tags={"0020|0037": "1\\0\\0\\0\\0.8\\-0.6"})
    with pytest.raises(InputImageError, match="orientation") as caught:
        read_volume(folder)
    message = str(caught.value)
    assert "1.2.3.4.7" in message and "1\\0\\0\\0\\1\\0" in message and ".8\\-" in message, message
    assert message.startswith(str(folder)) and "\n" not in message


def test_series_whose_slices_differ_in_pixel_spacing_is_refused(tmp_path):
    folder = write_series(tmp_path / "mixed", ct_array())
    rewrite_slice(sorted(folder.iterdir())[2], spacing=(0.9, 0.9, 2.0))
    with pytest.raises(InputImageError, match="pixel spacing"):
        read_volume(folder)
