"""`volume`: voxel ↔ patient coordinates (LPS, RAS) and the [k, j, i] array order."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from conftest import make_volume

from LesionDetectLib.volume import Volume, apply_affine, lps_to_ras


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
