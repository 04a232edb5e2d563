"""Adding a missed lesion at a point (`LesionDetectLib.add_lesion`, ``lesiondetect add-lesion``): the model on a
local window, the outline adapted to the lesion, nothing added on normal tissue; on a synthetic oblique volume with
a threshold model, and with the shipped brain model on a real glioma FLAIR."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SHARED_DATA, box_centroid_lps, make_volume, needs_shared_data, write_threshold_bundle

from LesionDetectLib import cli
from LesionDetectLib.add_lesion import lesion_at, outline_at, window_around
from LesionDetectLib.io import read_volume

BOX = (slice(8, 14), slice(10, 18), slice(6, 14))


def bright(window):
    """The stand-in model: intensity / 100, clipped to [0, 1]."""
    return np.clip(np.asarray(window.array, np.float32) / 100.0, 0.0, 1.0)


def test_window_is_a_sub_volume_on_the_same_grid():
    volume = make_volume()
    point = box_centroid_lps(volume, BOX)
    window, box = window_around(volume, point, window_mm=20.0)
    np.testing.assert_array_equal(window.array, volume.array[box])
    corner = tuple(s.start for s in box)[::-1]  # (i, j, k)
    np.testing.assert_allclose(window.origin, (volume.ijk_to_lps() @ np.array([*corner, 1.0]))[:3], atol=1e-9)
    np.testing.assert_allclose(window.direction, volume.direction)
    with pytest.raises(ValueError, match="outside the volume"):
        window_around(volume, np.add(volume.origin, -1000.0))


def test_the_lesion_at_the_point_is_outlined_and_measured():
    volume = make_volume(lesions=(BOX, (slice(2, 5), slice(30, 36), slice(25, 31))))
    point = box_centroid_lps(volume, BOX) + volume.direction @ np.array([1.2, 0.0, 0.0])  # off-centre click
    result = lesion_at(volume, bright, point, min_peak=0.25, model_name="bright")
    assert [lesion.id for lesion in result.lesions] == [1]  # the other lesion is not added
    expected = np.zeros(volume.array.shape, bool)
    expected[BOX] = True
    np.testing.assert_array_equal(result.label_map == 1, expected)  # both boxes are as bright; one is clicked
    np.testing.assert_allclose(result.lesions[0].centroid_lps, box_centroid_lps(volume, BOX), atol=1e-6)
    assert result.settings["local_threshold"] == pytest.approx(0.5 * result.settings["peak"])


def test_nothing_is_added_on_normal_tissue():
    volume = make_volume()
    far = volume.ijk_to_lps() @ np.array([30.0, 34.0, 20.0, 1.0])
    assert lesion_at(volume, bright, far[:3], min_peak=0.25, model_name="bright") is None
    window, _ = window_around(volume, far[:3])
    assert outline_at(bright(window), window, far[:3], min_peak=0.25) is None


def test_command_line_adds_the_lesion_or_says_there_is_none(tmp_path, isolated_models, capsys):
    volume = make_volume(background=-1000.0)  # CT-like: air around a bright lesion
    image = tmp_path / "case.nrrd"
    sitk.WriteImage(volume.to_sitk(), str(image))
    bundle = write_threshold_bundle(tmp_path / "bundle")
    ras = np.diag([-1.0, -1.0, 1.0]) @ box_centroid_lps(volume, BOX)
    common = ["--model", str(bundle), "--device", "cpu", "--progress", "none"]
    assert cli.main(["add-lesion", str(image), "--at", *map(str, ras), "-o", str(tmp_path / "out"), *common]) == 0
    table = (tmp_path / "out" / "case.lesions.csv").read_text(encoding="utf-8").splitlines()
    assert len(table) == 2
    far = np.diag([-1.0, -1.0, 1.0]) @ (volume.ijk_to_lps() @ np.array([30.0, 34.0, 20.0, 1.0]))[:3]
    capsys.readouterr()
    assert cli.main(["add-lesion", str(image), "--at", *map(str, far), "-o", str(tmp_path / "none"), *common]) == 0
    assert capsys.readouterr().err == f"lesiondetect: {image}: nothing lesion-like at the point; no lesion added\n"
    assert not (tmp_path / "none").exists()
    mr_bundle = write_threshold_bundle(tmp_path / "mr-bundle", modality="MR", input_channels=["MR"],
                                       intensity={"kind": "mr", "percentiles": [0.5, 99.5]})
    assert cli.main(["add-lesion", str(image), "--at", *map(str, ras), "-o", str(tmp_path / "mr"), "--model",
                     str(mr_bundle), "--device", "cpu", "--progress", "none"]) == 7  # an MR model on a CT


@needs_shared_data
def test_shipped_brain_model_adds_a_real_glioma_and_nothing_on_the_healthy_side(tmp_path, isolated_models):
    """A real FLAIR (BraTS): a click on the tumour adds a lesion lying in the expert's outline; a click at the
    mirrored point of the healthy hemisphere adds nothing."""
    pytest.importorskip("monai")
    case = SHARED_DATA / "brain-tumour-mri" / "Brats18_2013_11_1"
    volume = read_volume(case / "flair.nii.gz")
    truth = read_volume(case / "label.nii.gz").array > 0
    k, j, i = (float(np.mean(axis)) for axis in np.nonzero(truth))
    click = np.diag([-1.0, -1.0, 1.0]) @ (volume.ijk_to_lps() @ np.array([i, j, k, 1.0]))[:3]
    mirrored_i = volume.shape_ijk[0] - 1 - i
    assert not truth[int(round(k)), int(round(j)), int(round(mirrored_i))]
    mirrored = np.diag([-1.0, -1.0, 1.0]) @ (volume.ijk_to_lps() @ np.array([mirrored_i, j, k, 1.0]))[:3]
    common = ["--model", "brain-mri-lesions", "--device", "cpu", "--progress", "none", "--quiet"]
    image = str(case / "flair.nii.gz")
    assert cli.main(["add-lesion", image, "--at", *map(str, click), "-o", str(tmp_path / "tumour"), *common]) == 0
    added = read_volume(tmp_path / "tumour" / "flair.seg.nrrd").array > 0
    assert added.sum() > 1000 and (added & truth).sum() / added.sum() > 0.6  # 0.65 (recall 0.52) with brain-mri-lesions 1.1.0
    assert cli.main(["add-lesion", image, "--at", *map(str, mirrored), "-o", str(tmp_path / "healthy"), *common]) == 0
    assert not (tmp_path / "healthy").exists()
