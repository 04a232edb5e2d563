"""Reading volumes keeps geometry exactly; coordinate conversions are right."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SHARED_DATA, make_volume, needs_shared_data

from LesionDetectLib.io import read_volume, volume_stem
from LesionDetectLib.volume import Volume, apply_affine, lps_to_ras


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_file_round_trip_keeps_geometry(tmp_path, suffix):
    volume = make_volume()
    path = tmp_path / f"case{suffix}"
    sitk.WriteImage(volume.to_sitk(), str(path))
    back = read_volume(path)
    assert back.name == "case"
    assert back.same_geometry(volume, tolerance=1e-4)
    np.testing.assert_allclose(back.array, volume.array)


def test_ijk_to_lps_matches_simpleitk():
    volume = make_volume()
    image = volume.to_sitk()
    for ijk in [(0, 0, 0), (5, 7, 3), (35, 39, 23)]:
        expected = image.TransformIndexToPhysicalPoint(ijk)
        np.testing.assert_allclose(apply_affine(volume.ijk_to_lps(), ijk), expected, atol=1e-9)


def test_ijk_to_ras_flips_l_and_p():
    volume = make_volume()
    lps = apply_affine(volume.ijk_to_lps(), (3, 4, 5))
    ras = apply_affine(volume.ijk_to_ras(), (3, 4, 5))
    np.testing.assert_allclose(ras, [-lps[0], -lps[1], lps[2]])
    np.testing.assert_allclose(lps_to_ras(lps_to_ras(lps)), lps)


def test_array_is_kji():
    array = np.zeros((2, 3, 4), np.int16)
    volume = Volume.from_sitk(sitk.GetImageFromArray(array))
    assert volume.shape_ijk == (4, 3, 2)


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
