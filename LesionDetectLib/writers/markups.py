"""Lesion centroids as a 3D Slicer markups point list (``.mrk.json``, Slicer's markups schema v1.0.3), and a box
detector's boxes as Slicer ROIs (``.boxes.mrk.json``: one ROI markup per lesion, which Slicer loads as one ROI node
each).

Positions are written in LPS (``coordinateSystem`` says so; Slicer flips them to RAS when loading). Slicer
flips each control point's orientation matrix too, so the identity orientation in Slicer's RAS world is
written as diag(-1, -1, 1), as Slicer itself writes LPS files. Numbers are floats (Slicer's reader rejects
integer literals in position vectors). An ROI's ``orientation`` holds its axes as columns (row-major), in LPS too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..lesions import Lesion
from .atomic import atomic_output

SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
    "markups-schema-v1.0.3.json#"
)
BOXES_SUFFIX = ".boxes.mrk.json"  # beside the point list ``<stem>.mrk.json``
IDENTITY_ORIENTATION_LPS = [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]
DISPLAY = {
    "visibility": True,
    "opacity": 1.0,
    "color": [1.0, 0.93, 0.55],
    "selectedColor": [1.0, 0.82, 0.1],  # amber: stands out on grey images and on the red lesion segments
    "activeColor": [0.4, 1.0, 0.0],
    "propertiesLabelVisibility": False,
    "pointLabelsVisibility": True,
    "textScale": 3.0,
    "glyphType": "Sphere3D",
    "glyphScale": 2.5,  # % of the view size: visible at any zoom, small lesions included
    "glyphSize": 5.0,
    "useGlyphScale": True,
    "sliceProjection": False,
    "snapMode": "unconstrained",
}


def control_point(lesion: Lesion, point_id: str, position_lps) -> dict[str, object]:
    """A locked, defined control point labelled as the lesion, with its one-line description."""
    return {
        "id": point_id,
        "label": lesion.label,
        "description": lesion.description(),
        "associatedNodeID": "",
        "position": [float(value) for value in position_lps],
        "orientation": list(IDENTITY_ORIENTATION_LPS),
        "selected": True,
        "locked": True,
        "visibility": True,
        "positionStatus": "defined",
    }


def points_document(lesions: Sequence[Lesion], volume_name: str) -> dict[str, object]:
    """The markups JSON document: one control point per lesion, at its centroid; named for ``volume_name``."""
    lesions = sorted(lesions, key=lambda lesion: lesion.id)
    control_points = [control_point(lesion, str(lesion.id), lesion.marker_lps) for lesion in lesions]
    markup = {
        "type": "Fiducial",
        "name": f"{volume_name} lesion points",
        "coordinateSystem": "LPS",
        "coordinateUnits": "mm",
        "locked": True,
        "fixedNumberOfControlPoints": False,
        "labelFormat": "L%d",
        "lastUsedControlPointNumber": max((lesion.id for lesion in lesions), default=0),
        "controlPoints": control_points,
        "measurements": [],
        "display": dict(DISPLAY),
    }
    return {"@schema": SCHEMA, "markups": [markup]}


def write_points(path: str | Path, lesions: Sequence[Lesion], volume_name: str) -> Path:
    """Write the lesion centroids as a Slicer point list."""
    return _write_document(path, points_document(lesions, volume_name))


BOX_DISPLAY = {**DISPLAY, "color": [1.0, 0.55, 0.1], "selectedColor": [1.0, 0.55, 0.1], "opacity": 1.0,
               "propertiesLabelVisibility": True, "pointLabelsVisibility": False, "handlesInteractive": False}


def boxes_document(lesions: Sequence[Lesion], volume_name: str) -> dict[str, object]:
    """The markups JSON document of the lesions' detector boxes: one ROI per lesion that has one, by id."""
    markups = []
    for lesion in sorted(lesions, key=lambda lesion: lesion.id):
        box = lesion.detector_box
        if box is None:
            continue
        markups.append({
            "type": "ROI",
            "name": f"{volume_name} {lesion.label} box",
            "coordinateSystem": "LPS",
            "coordinateUnits": "mm",
            "locked": True,
            "fixedNumberOfControlPoints": False,
            "labelFormat": "%N-%d",
            "roiType": "Box",
            "insideOut": False,
            "center": [float(value) for value in box.centre_lps],
            "orientation": [float(box.axes_lps[column][row]) for row in range(3) for column in range(3)],
            "size": [float(value) for value in box.size_mm],
            # Slicer's reader keeps a Box ROI's size only when its centre is also given as its control point
            "controlPoints": [control_point(lesion, "1", box.centre_lps)],
            "measurements": [],
            "display": dict(BOX_DISPLAY),
        })
    return {"@schema": SCHEMA, "markups": markups}


def write_boxes(path: str | Path, lesions: Sequence[Lesion], volume_name: str) -> Path:
    """Write the lesions' detector boxes as Slicer ROIs."""
    return _write_document(path, boxes_document(lesions, volume_name))


def _write_document(path: str | Path, document: dict[str, object]) -> Path:
    path = Path(path)
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path
