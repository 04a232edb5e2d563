"""End to end through `detect` and the writers: outputs overlay the input exactly."""

from __future__ import annotations

import csv
import json

import nrrd
import numpy as np
import pytest
import slicerio
from conftest import box_centroid_lps, make_volume, write_threshold_bundle

from LesionDetectLib import detect, load_model
from LesionDetectLib.errors import ModalityMismatchError
from LesionDetectLib.volume import LPS_TO_RAS, Volume, lps_to_ras

BOXES = ((slice(8, 14), slice(10, 20), slice(6, 16)), (slice(16, 20), slice(26, 32), slice(22, 30)))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_model(write_threshold_bundle(tmp_path_factory.mktemp("m") / "bundle"))


@pytest.fixture(scope="module")
def oblique_result(model):
    volume = make_volume(lesions=BOXES, lesion_value=100.0)
    volume.array[BOXES[1]] = 80.0  # second lesion less bright → less confident after windowing? both saturate
    return volume, detect(volume, model, device="cpu")


def test_lesions_land_on_the_boxes(oblique_result):
    volume, result = oblique_result
    assert len(result.lesions) == 2
    truth = np.zeros(volume.array.shape, bool)
    for box in BOXES:
        truth[box] = True
    found = result.label_map > 0
    dice = 2 * (found & truth).sum() / (found.sum() + truth.sum())
    assert dice > 0.9
    by_size = sorted(result.lesions, key=lambda lesion: -lesion.voxel_count)
    for lesion, box in zip(by_size, BOXES):
        assert np.linalg.norm(np.array(lesion.centroid_lps) - box_centroid_lps(volume, box)) < 0.6


def test_exact_on_a_grid_matching_the_model():
    """RAS-aligned input at the model's 1 mm spacing: the label map equals the boxes voxel for voxel."""
    volume = make_volume(spacing=(1.0, 1.0, 1.0), direction=LPS_TO_RAS, lesions=BOXES)
    model = load_model(write_threshold_bundle(__import__("pathlib").Path(__import__("tempfile").mkdtemp()) / "b"))
    result = detect(volume, model, device="cpu")
    truth = np.zeros(volume.array.shape, np.uint16)
    for value, box in enumerate(BOXES, start=1):
        truth[box] = value
    assert set(np.unique(result.label_map)) == {0, 1, 2}
    assert np.array_equal(result.label_map > 0, truth > 0)
    for lesion in result.lesions:
        box = BOXES[int(truth[result.label_map == lesion.id][0]) - 1]
        np.testing.assert_allclose(lesion.centroid_lps, box_centroid_lps(volume, box), atol=1e-6)


def test_written_files_overlay_the_input(oblique_result, tmp_path):
    volume, result = oblique_result
    paths = result.write(tmp_path, "case")
    assert {p.name for p in tmp_path.iterdir()} >= {"case.seg.nrrd", "case.mrk.json", "case.lesions.csv", "case.lesions.json"}
    assert all(path.exists() for path in paths.values())

    segmentation = slicerio.read_segmentation(str(tmp_path / "case.seg.nrrd"))
    np.testing.assert_allclose(segmentation["ijkToLPS"], volume.ijk_to_lps(), atol=1e-6)
    assert [s["name"] for s in segmentation["segments"]] == ["Lesion 1", "Lesion 2"]
    data, header = nrrd.read(str(tmp_path / "case.seg.nrrd"))
    assert np.array_equal(data.transpose(2, 1, 0), result.label_map)

    markups = json.loads((tmp_path / "case.mrk.json").read_text())["markups"][0]
    points = {p["label"]: np.array(p["position"]) for p in markups["controlPoints"]}
    to_lps = (lambda p: lps_to_ras(p)) if markups["coordinateSystem"] == "RAS" else (lambda p: p)
    for lesion in result.lesions:
        np.testing.assert_allclose(to_lps(points[lesion.label]), lesion.centroid_lps, atol=1e-3)

    rows = list(csv.DictReader((tmp_path / "case.lesions.csv").open()))
    for row, lesion in zip(rows, result.lesions):
        ras = [float(row[f"centroid_{axis}"]) for axis in "ras"]
        np.testing.assert_allclose(ras, lesion.centroid_ras, atol=1e-3)
        ijk = np.array([float(row[f"centroid_{axis}"]) for axis in "ijk"] + [1.0])
        np.testing.assert_allclose(volume.ijk_to_ras()[:3] @ ijk, ras, atol=1e-3)


def test_probability_map_on_the_input_grid(oblique_result, tmp_path):
    import SimpleITK as sitk

    volume, result = oblique_result
    result.write(tmp_path, "case", save_probability=True)
    probability = Volume.from_sitk(sitk.ReadImage(str(tmp_path / "case.probability.nrrd")))
    assert probability.same_geometry(volume, tolerance=1e-5)
    np.testing.assert_allclose(probability.array, result.probability)


def test_modality_guard(model):
    volume = make_volume()
    mr_volume = Volume(volume.array, volume.spacing, volume.origin, volume.direction, modality="MR")
    with pytest.raises(ModalityMismatchError, match="force-modality"):
        detect(mr_volume, model, device="cpu")
    assert detect(mr_volume, model, device="cpu", force_modality=True).lesions


def test_threshold_and_min_size_overrides(model):
    volume = make_volume(lesions=BOXES)
    assert len(detect(volume, model, device="cpu", min_volume_mm3=10_000).lesions) == 0
    assert len(detect(volume, model, device="cpu", max_lesions=1).lesions) == 1
