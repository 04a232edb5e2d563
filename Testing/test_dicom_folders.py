"""DICOM series folders (`dicom_folders`): a series read with its geometry, one chosen by UID, and series whose
slices do not make one grid refused."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA, needs_shared_data, rewrite_slice, write_series

from LesionDetectLib.dicom_folders import dicom_series
from LesionDetectLib.errors import InputImageError
from LesionDetectLib.io import read_volume


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
