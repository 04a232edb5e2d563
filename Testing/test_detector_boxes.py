"""A box detector's boxes → lesions, label map, point list, table columns and Slicer ROI file, on an oblique,
mirrored, anisotropic grid with a non-zero origin (no torchvision needed: the boxes are given)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from box_detections import RAS_AXES_LPS, boxes_on, centre_of, make_volume, voxel_centres_lps

from LesionDetectLib import writers
from LesionDetectLib.detected_box import BOX_COLUMNS, DetectedBox
from LesionDetectLib.detector_boxes import box_label_map, box_probability, lesions_from_boxes
from LesionDetectLib.evaluation.predictions import prediction_index
from LesionDetectLib.lesions import TABLE_COLUMNS

SCHEMA = Path(__file__).resolve().parents[2] / "shared" / "schemas" / "markups-schema-v1.0.3.json"
def test_each_box_over_the_threshold_is_a_lesion_holding_the_voxels_whose_centres_it_contains():
    volume = make_volume()
    boxes = boxes_on(volume)
    lesions, label_map = lesions_from_boxes(boxes, volume, threshold=0.5, measure_surfaces=False)
    assert [lesion.confidence_max for lesion in lesions] == [0.9, 0.6]  # by score; the 0.2 box is no lesion
    centres = voxel_centres_lps(volume).reshape(-1, 3)
    first = boxes[1].contains(centres).reshape(volume.array.shape)
    second = boxes[0].contains(centres).reshape(volume.array.shape) & ~first  # the overlap is the higher score's
    assert first.any() and second.any() and (boxes[0].contains(centres) & boxes[1].contains(centres)).any()
    assert np.array_equal(label_map == 1, first) and np.array_equal(label_map == 2, second)
    assert set(np.unique(label_map)) == {0, 1, 2}
    for lesion, box in zip(lesions, (boxes[1], boxes[0])):
        assert lesion.detector_box == box and lesion.marker_lps == box.centre_lps
        assert lesion.voxel_count == int((label_map == lesion.id).sum())
        assert lesion.volume_mm3 == pytest.approx(lesion.voxel_count * volume.voxel_volume_mm3)


def test_a_box_is_found_on_the_voxels_a_brute_force_search_finds():
    volume = make_volume()
    box = boxes_on(volume)[0]
    expected = box.contains(voxel_centres_lps(volume).reshape(-1, 3)).reshape(volume.array.shape)
    assert np.array_equal(box_label_map([box], volume) == 1, expected)
    corners = box.corners_lps()
    assert np.allclose(corners.mean(axis=0), box.centre_lps)
    edges = np.linalg.norm(corners[[4, 2, 1]] - corners[0], axis=1)  # along axes x, y, z from the (−,−,−) corner
    assert np.allclose(edges, box.size_mm)


def test_min_volume_and_max_lesions_and_boxes_outside_the_volume():
    volume = make_volume()
    boxes = boxes_on(volume)
    outside = DetectedBox(0.99, centre_of(volume, (-40, -40, -20)), (5.0, 5.0, 5.0), RAS_AXES_LPS)
    lesions, label_map = lesions_from_boxes([*boxes, outside], volume, threshold=0.5, measure_surfaces=False)
    assert [lesion.confidence_max for lesion in lesions] == [0.9, 0.6]  # no voxel: no lesion, ids stay 1, 2
    lesions, _ = lesions_from_boxes(boxes, volume, threshold=0.5, max_lesions=1, measure_surfaces=False)
    assert [lesion.confidence_max for lesion in lesions] == [0.9]
    smallest = min(int((label_map == n).sum()) for n in (1, 2)) * volume.voxel_volume_mm3
    lesions, _ = lesions_from_boxes(boxes, volume, threshold=0.5, min_volume_mm3=smallest + 1, measure_surfaces=False)
    assert len(lesions) == 1


def test_the_outputs_carry_the_boxes_and_the_points_sit_at_their_centres(tmp_path):
    volume = make_volume()
    boxes = boxes_on(volume)
    lesions, label_map = lesions_from_boxes(boxes, volume, threshold=0.5)
    paths = writers.write_all(tmp_path, "chest", volume, label_map, lesions, model_name="lung_nodule_ct_detection",
                              threshold=0.5, settings={}, warnings=[])
    assert paths["boxes"] == tmp_path / "chest.boxes.mrk.json"
    with paths["table_csv"].open(newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert reader.fieldnames == [*TABLE_COLUMNS, *BOX_COLUMNS]
    for row, box in zip(rows, (boxes[1], boxes[0])):
        assert [float(row[name]) for name in BOX_COLUMNS[3:]] == pytest.approx(box.size_mm)
        ras = (-box.centre_lps[0], -box.centre_lps[1], box.centre_lps[2])
        assert [float(row[name]) for name in BOX_COLUMNS[:3]] == pytest.approx(ras, abs=1e-4)
    table = json.loads(paths["table_json"].read_text())
    assert table["lesions"][0]["box_size_z_mm"] == pytest.approx(12.0)
    (points,) = json.loads(paths["points"].read_text())["markups"]
    assert [point["position"] for point in points["controlPoints"]] == [list(boxes[1].centre_lps),
                                                                       list(boxes[0].centre_lps)]
    rois = json.loads(paths["boxes"].read_text())["markups"]
    assert [roi["type"] for roi in rois] == ["ROI", "ROI"] and rois[0]["name"] == "chest L1 box"
    assert rois[1]["center"] == list(boxes[0].centre_lps) and rois[1]["size"] == list(boxes[0].size_mm)
    orientation = np.array(rois[1]["orientation"]).reshape(3, 3)  # row-major, axes as columns
    assert np.allclose(orientation, np.array(boxes[0].axes_lps).T)


@pytest.mark.skipif(not SCHEMA.is_file(), reason=f"Slicer markups schema {SCHEMA} is absent (../shared/schemas)")
def test_the_roi_file_follows_slicers_markups_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    volume = make_volume()
    lesions, _ = lesions_from_boxes(boxes_on(volume), volume, threshold=0.5, measure_surfaces=False)
    path = writers.write_boxes(tmp_path / "chest.boxes.mrk.json", lesions, volume.name)
    jsonschema.validate(json.loads(path.read_text()), json.loads(SCHEMA.read_text()))


def test_a_segmentation_models_outputs_have_no_boxes(tmp_path):
    volume = make_volume()
    lesions, label_map = lesions_from_boxes(boxes_on(volume), volume, threshold=0.5, measure_surfaces=False)
    (tmp_path / "chest.boxes.mrk.json").write_text("stale")  # an earlier detector run's
    plain = [lesion.with_detector_box(None) for lesion in lesions]
    paths = writers.write_all(tmp_path, "chest", volume, label_map, plain, model_name="m", threshold=0.5,
                              settings={}, warnings=[])
    assert "boxes" not in paths and not (tmp_path / "chest.boxes.mrk.json").exists()
    assert paths["table_csv"].read_text().splitlines()[0] == ",".join(TABLE_COLUMNS)


def test_evaluation_does_not_take_the_roi_file_for_a_prediction(tmp_path):
    volume = make_volume()
    lesions, label_map = lesions_from_boxes(boxes_on(volume), volume, threshold=0.5, measure_surfaces=False)
    writers.write_all(tmp_path / "case1", "chest", volume, label_map, lesions, model_name="m", threshold=0.5,
                      settings={}, warnings=[])
    index = prediction_index(tmp_path)
    assert set(index) == {"case1"} and index["case1"]["mrk"].name == "chest.mrk.json"


def test_the_probability_map_is_each_lesions_score_on_its_segment():
    volume = make_volume()
    lesions, label_map = lesions_from_boxes(boxes_on(volume), volume, threshold=0.5, measure_surfaces=False)
    probability = box_probability(lesions, label_map)
    assert probability.shape == label_map.shape and probability.dtype == np.float32
    assert np.all(probability[label_map == 0] == 0)
    for lesion in lesions:
        assert np.all(probability[label_map == lesion.id] == np.float32(lesion.confidence_max))
