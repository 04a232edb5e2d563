"""`io`: reading volumes (image files) and masks keeps their geometry exactly (DICOM series folders: test_dicom_folders.py)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SHARED_DATA, make_volume, needs_shared_data
from evaluation_cases import rotation

from LesionDetectLib.io import read_mask, read_volume, volume_stem


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
