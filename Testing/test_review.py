"""The review record of the lesions (`LesionDetectLib.review`): statuses, summary and the reviewed table files."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from LesionDetectLib import review

COLUMNS = ["id", "label", "volume_mm3", "confidence_max"]


def rows():
    return [
        {"id": 1, "label": "L1", "volume_mm3": 1500.0, "confidence_max": 0.9, "status": "accepted",
         "comment": "grew, compare with prior", "origin": "model"},
        {"id": 2, "label": "L2", "volume_mm3": 250.5, "confidence_max": 0.6, "status": "rejected", "comment": "",
         "origin": "model"},
        {"id": 3, "label": "L3", "volume_mm3": math.nan, "confidence_max": math.nan, "status": "accepted",
         "comment": "", "origin": "reader"},
        {"id": 4, "label": "L4", "volume_mm3": 100.0, "confidence_max": 0.5},  # no review yet
    ]


def test_summary_counts_and_volumes_by_status():
    summary = review.review_summary(review.reviewed_rows(rows(), COLUMNS))
    assert summary == {"lesions": 4, "count_by_status": {"unreviewed": 1, "accepted": 2, "rejected": 1},
                       "volume_mm3_by_status": {"unreviewed": 100.0, "accepted": 1500.0, "rejected": 250.5},
                       "added_by_reader": 1}
    assert review.summary_text(summary).splitlines() == [
        "4 lesion(s): 2 accepted, 1 rejected, 1 unreviewed (1 added by the reader).",
        "Total lesion volume: accepted 1.50 ml, accepted and unreviewed 1.60 ml, rejected 0.25 ml."]
    assert review.review_summary([])["lesions"] == 0


def test_csv_and_json_carry_status_comment_and_origin():
    text = review.review_csv_text(rows(), COLUMNS)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert list(parsed[0]) == [*COLUMNS, "status", "comment", "origin"]
    assert [(row["status"], row["comment"], row["origin"]) for row in parsed] == [
        ("accepted", "grew, compare with prior", "model"), ("rejected", "", "model"), ("accepted", "", "reader"),
        ("unreviewed", "", "model")]
    assert parsed[2]["volume_mm3"] == ""  # a missing value is an empty cell
    document = json.loads(review.review_json_text(rows(), COLUMNS))
    assert document["format"] == "lesiondetect.review" and document["version"] == 1
    assert document["summary"]["count_by_status"]["accepted"] == 2
    assert document["lesions"][2]["volume_mm3"] is None and document["lesions"][3]["status"] == "unreviewed"


@pytest.mark.parametrize("field, value", [("status", "maybe"), ("origin", "radiologist")])
def test_unknown_status_or_origin_is_refused(field, value):
    bad = rows()
    bad[0][field] = value
    with pytest.raises(ValueError, match=f"lesion {field} must be one of"):
        review.review_csv_text(bad, COLUMNS)
