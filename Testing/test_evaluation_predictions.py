"""`evaluation.predictions`: predictions read from a lesion table or a markups point list."""

from __future__ import annotations

import json

from LesionDetectLib.evaluation import Prediction, read_predictions


def test_read_predictions_from_a_lesion_table(tmp_path):
    table = tmp_path / "c.lesions.csv"
    table.write_text("id,confidence_max,centroid_l,centroid_p,centroid_s_lps\n1,0.9,1.5,-2,3\n2,0.4,10,20,30\n")
    assert read_predictions(table) == [Prediction((1.5, -2.0, 3.0), 0.9, 1), Prediction((10.0, 20.0, 30.0), 0.4, 2)]


def test_read_predictions_from_a_markups_point_list_in_ras(tmp_path):
    markups = tmp_path / "c.mrk.json"
    markups.write_text(json.dumps({"markups": [{"type": "Fiducial", "coordinateSystem": "RAS", "controlPoints": [
        {"label": "L1", "description": "confidence 0.87, volume 120 mm3", "position": [1.0, 2.0, 3.0]},
        {"label": "manual", "position": [-4.0, 5.0, 6.0]},
    ]}]}))
    assert read_predictions(markups) == [Prediction((-1.0, -2.0, 3.0), 0.87, 1), Prediction((4.0, -5.0, 6.0), 1.0)]
