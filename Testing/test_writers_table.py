"""`writers.table`: the lesion table as CSV and JSON."""

from __future__ import annotations

import csv
import json

import numpy as np
from writer_inputs import ORIGIN, SPACING

from LesionDetectLib import writers
from LesionDetectLib.lesions import TABLE_COLUMNS


def test_table_csv_columns_and_values(written):
    paths, result = written
    with paths["table_csv"].open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == TABLE_COLUMNS
    assert len(rows) == 3
    for cells, lesion in zip(rows[1:], result.lesions):
        expected = lesion.as_row()
        for column, cell in zip(TABLE_COLUMNS, cells):
            value = expected[column]
            if value is None:
                assert cell == ""
            elif isinstance(value, str):
                assert cell == value
            elif isinstance(value, (int, np.integer)):
                assert cell == str(int(value))
            else:
                assert cell == repr(float(value))
    assert rows[1][TABLE_COLUMNS.index("surface_area_mm2")] == "123.4568"
    assert rows[2][TABLE_COLUMNS.index("sphericity")] == ""
    assert paths["table_csv"].read_bytes().count(b"\r") == 0


def test_table_json_content(written):
    paths, result = written
    text = paths["table_json"].read_text(encoding="utf-8")
    document = json.loads(text)
    assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    volume = result.volume
    assert document["format"] == "lesiondetect.lesions" and document["version"] == 1
    assert document["input"] == {
        "name": "case", "shape_ijk": list(volume.shape_ijk), "spacing": list(SPACING), "origin_lps": list(ORIGIN),
        "direction_lps": np.asarray(volume.direction).tolist(),
    }
    assert document["model"] == "test-model" and document["threshold"] == 0.5
    assert document["settings"] == {"device": "cpu", "bundle": "/models/test", "patch": [32, 32, 32]}
    assert document["warnings"] == ["a warning"]
    assert [set(row) for row in document["lesions"]] == [set(TABLE_COLUMNS)] * 2
    for row, lesion in zip(document["lesions"], result.lesions):
        assert row == {key: (None if value is None else value) for key, value in lesion.as_row().items()}


def test_tables_written_again_are_the_same_bytes(written, tmp_path):
    paths, result = written
    again = writers.write_table_json(tmp_path / "again.json", result.volume, result.lesions, model_name="test-model",
                                     threshold=0.5, settings=result.settings, warnings=result.warnings)
    assert again.read_bytes() == paths["table_json"].read_bytes()
    csv_again = writers.write_table_csv(tmp_path / "again.csv", result.lesions)
    assert csv_again.read_bytes() == paths["table_csv"].read_bytes()
