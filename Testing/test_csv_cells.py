"""The CSV cells of the lesion table (floats as ``repr``) and of the evaluation reports (6 digits, ``inf``)."""

from __future__ import annotations

import math

import numpy as np

from LesionDetectLib.csv_cells import csv_cell, csv_text


def test_table_cells_round_trip_floats_and_leave_missing_values_empty():
    assert [csv_cell(value) for value in (0.1 + 0.2, np.float32(0.5), 3, np.int64(7), True, "L1")] == [
        "0.30000000000000004", "0.5", "3", "7", "True", "L1"]
    assert [csv_cell(value) for value in (None, math.nan, math.inf, -math.inf)] == ["", "", "", ""]


def test_report_cells_have_six_digits_and_write_infinity():
    cells = [csv_cell(value, ".6g", "inf") for value in (1 / 3, np.float64(1234567.0), math.inf, -math.inf, math.nan)]
    assert cells == ["0.333333", "1.23457e+06", "inf", "inf", ""]


def test_text_has_a_header_and_empty_cells_for_missing_columns():
    text = csv_text(["a", "b"], [{"a": 1.5, "b": "x,y"}, {"a": None}])
    assert text == 'a,b\n1.5,"x,y"\n,\n'
