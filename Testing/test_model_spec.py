"""`model_spec`: what model.json may hold; every problem is refused with its field named."""

from __future__ import annotations

import json

import pytest

from LesionDetectLib.errors import ModelBundleError
from LesionDetectLib.model_spec import ModelSpec


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"threshold": None}, "missing field 'threshold'"),
        ({"surprise": 1}, "unknown field 'surprise'"),
        ({"modality": "PET"}, "modality"),
        ({"spacing": [1, 1]}, "spacing"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": 0.6, "outline_threshold": 0.7}, "outline_threshold must be in"),
        ({"outline_threshold": 0}, "outline_threshold must be in"),
    ],
)
def test_invalid_specs_are_refused(threshold_bundle, change, message):
    spec = json.loads((threshold_bundle / "model.json").read_text())
    spec.update({key: value for key, value in change.items() if value is not None})
    for key in [key for key, value in change.items() if value is None]:
        del spec[key]
    with pytest.raises(ModelBundleError, match=message):
        ModelSpec.from_dict(spec)
