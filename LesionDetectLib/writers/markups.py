"""Lesion centroids as a 3D Slicer markups point list (``.mrk.json``, Slicer's markups schema v1.0.3).

Positions are written in LPS (``coordinateSystem`` says so; Slicer flips them to RAS when loading). Slicer
flips each control point's orientation matrix too, so the identity orientation in Slicer's RAS world is
written as diag(-1, -1, 1), as Slicer itself writes LPS files. Numbers are floats (Slicer's reader rejects
integer literals in position vectors).
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


def points_document(lesions: Sequence[Lesion], volume_name: str) -> dict[str, object]:
    """The markups JSON document: one control point per lesion, at its centroid; named for ``volume_name``."""
    lesions = sorted(lesions, key=lambda lesion: lesion.id)
    control_points = [
        {
            "id": str(lesion.id),
            "label": lesion.label,
            "description": lesion.description(),
            "associatedNodeID": "",
            "position": [float(value) for value in lesion.centroid_lps],
            "orientation": list(IDENTITY_ORIENTATION_LPS),
            "selected": True,
            "locked": True,
            "visibility": True,
            "positionStatus": "defined",
        }
        for lesion in lesions
    ]
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
    path = Path(path)
    text = json.dumps(points_document(lesions, volume_name), indent=2, allow_nan=False) + "\n"
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path
