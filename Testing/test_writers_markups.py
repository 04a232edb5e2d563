"""`writers.markups`: the lesion point list (.mrk.json), against Slicer's markups schema."""

from __future__ import annotations

import json

import numpy as np
import pytest
from writer_inputs import MARKUPS_SCHEMA

from LesionDetectLib import writers
from LesionDetectLib.volume import apply_affine

needs_schema = pytest.mark.skipif(
    not MARKUPS_SCHEMA.is_file(), reason=f"Slicer markups schema {MARKUPS_SCHEMA} is absent (../shared/schemas)"
)


@needs_schema
@pytest.mark.parametrize("lesion_count", [2, 0])
def test_points_validate_against_slicer_schema(tmp_path, result, lesion_count):
    import jsonschema

    path = writers.write_points(tmp_path / "points.mrk.json", result.lesions[:lesion_count], result.volume.name)
    jsonschema.validate(json.loads(path.read_text()), json.loads(MARKUPS_SCHEMA.read_text()))


def test_points_sit_on_the_centroids_in_lps(written):
    paths, result = written
    document = json.loads(paths["points"].read_text())
    assert document["@schema"].endswith("/markups-schema-v1.0.3.json#")
    (markup,) = document["markups"]
    assert markup["type"] == "Fiducial" and markup["coordinateSystem"] == "LPS" and markup["coordinateUnits"] == "mm"
    assert markup["name"] == "case lesion points"
    points = markup["controlPoints"]
    assert [p["id"] for p in points] == ["1", "2"] and [p["label"] for p in points] == ["L1", "L2"]
    for point, lesion in zip(points, result.lesions):
        assert point["position"] == list(lesion.centroid_lps)
        assert np.allclose(np.array(point["position"]) * [-1, -1, 1], lesion.centroid_ras, atol=1e-12)
        assert point["description"] == lesion.description()
        assert point["positionStatus"] == "defined"
        # Slicer's reader accepts only floating-point literals in position and orientation vectors
        assert all(isinstance(v, float) for v in point["position"] + point["orientation"])
    # lesion 1's centroid is the centre of its ball: voxel (9, 11, 5)
    assert np.allclose(points[0]["position"], apply_affine(result.volume.ijk_to_lps(), [9, 11, 5]), atol=1e-9)
