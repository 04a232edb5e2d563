"""Every unusable input gets one clear error with its own exit code."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import make_volume

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
