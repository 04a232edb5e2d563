"""`writers.probability`: the probability map on the input grid."""

from __future__ import annotations

import nrrd
import numpy as np


def test_probability_map_on_the_input_grid(written):
    import SimpleITK as sitk

    paths, result = written
    image = sitk.ReadImage(str(paths["probability"]))
    volume = result.volume
    assert image.GetPixelID() == sitk.sitkFloat32
    assert np.allclose(image.GetSpacing(), volume.spacing, atol=1e-12)
    assert np.allclose(image.GetOrigin(), volume.origin, atol=1e-12)
    assert np.allclose(np.reshape(image.GetDirection(), (3, 3)), volume.direction, atol=1e-12)
    assert np.array_equal(sitk.GetArrayFromImage(image), result.probability)
    assert nrrd.read_header(str(paths["probability"]))["space"] == "left-posterior-superior"
