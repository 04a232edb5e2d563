"""`result`: a detection result's probability map, computed once when first read."""

from __future__ import annotations

import numpy as np
from conftest import make_volume

from LesionDetectLib.result import DetectionResult


def test_the_probability_of_a_result_is_computed_once_when_first_read():
    volume = make_volume((4, 5, 6), lesions=())
    calls = []

    def compute():
        calls.append(1)
        return np.full(volume.array.shape, 0.25, np.float32)

    result = DetectionResult(volume, [], np.zeros(volume.array.shape, np.uint16), compute, 0.5, "m")
    assert calls == []
    assert result.probability.shape == volume.array.shape and result.probability[0, 0, 0] == 0.25
    assert calls == [1]
