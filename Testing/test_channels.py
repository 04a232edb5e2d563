"""Multi-sequence input: channels on other grids are aligned by physical space onto the reference channel's
grid, outputs lie on the reference grid, and missing/extra/duplicated/non-overlapping channels are refused."""

from __future__ import annotations

import numpy as np
import pytest
from channel_scans import CENTRE_LPS, FLAIR_DIRECTION, RADIUS_MM, rotation, sphere
from conftest import write_threshold_bundle

from LesionDetectLib.bundles import open_bundle
from LesionDetectLib.channels import with_main_channel
from LesionDetectLib.detect import detect
from LesionDetectLib.errors import InputImageError


@pytest.fixture
def two_channel_model(tmp_path):
    """Lesion only where both channels are bright: sigmoid(40 · (mean of the two windowed channels − 0.75))."""
    folder = write_threshold_bundle(
        tmp_path / "two", name="two-channel", input_channels=["FLAIR", "T1"],
        network={"name": "IntensityThreshold", "kwargs": {"in_channels": 2, "out_channels": 1, "level": 0.75,
                                                          "scale": 40.0}})
    return open_bundle(folder)


@pytest.mark.parametrize("t1_grid", [
    pytest.param(((48, 46, 36), (0.8, 0.9, 1.2), FLAIR_DIRECTION), id="another-spacing"),
    pytest.param(((50, 46, 34), (1.0, 1.1, 1.5), np.diag([-1.0, 1.0, -1.0])[:, [2, 0, 1]]), id="another-direction"),
    pytest.param(((60, 60, 60), (0.9, 0.9, 0.9), rotation(0, 25) @ rotation(1, -15)), id="oblique"),
])
def test_channels_on_other_grids_align_in_physical_space(two_channel_model, t1_grid):
    flair = sphere((36, 32, 24), (1.0, 1.2, 1.5), FLAIR_DIRECTION, name="flair")
    t1 = sphere(*t1_grid, name="t1")
    result = detect({"FLAIR": flair, "T1": t1}, two_channel_model, device="cpu")
    assert result.volume is flair and result.label_map.shape == flair.array.shape
    assert len(result.lesions) == 1
    assert np.linalg.norm(np.array(result.lesions[0].centroid_lps) - CENTRE_LPS) < 1.0
    expected_mm3 = 4 / 3 * np.pi * RADIUS_MM**3
    assert 0.7 * expected_mm3 < result.lesions[0].volume_mm3 < 1.3 * expected_mm3


def test_a_channel_elsewhere_finds_nothing_and_one_far_away_is_refused(two_channel_model):
    flair = sphere((36, 32, 24), (1.0, 1.2, 1.5), FLAIR_DIRECTION, name="flair")
    shifted = sphere((36, 32, 24), (1.0, 1.2, 1.5), FLAIR_DIRECTION, centre=CENTRE_LPS + [0, 0, 14.0], name="t1")
    with pytest.raises(InputImageError, match="channel 'T1' covers only"):
        detect({"FLAIR": flair, "T1": shifted}, two_channel_model, device="cpu")
    far = sphere((36, 32, 24), (1.0, 1.2, 1.5), FLAIR_DIRECTION, centre=CENTRE_LPS + [500.0, 0, 0], name="t1")
    with pytest.raises(InputImageError, match="channel 'T1' does not overlap the reference channel 'FLAIR'"):
        detect({"FLAIR": flair, "T1": far}, two_channel_model, device="cpu")


def test_missing_extra_duplicated_and_repeated_channels_are_refused_by_name(two_channel_model):
    flair = sphere((20, 20, 16), (1.0, 1.0, 1.5), np.eye(3), name="flair")
    t1 = sphere((20, 20, 16), (1.1, 1.0, 1.5), np.eye(3), name="t1")
    cases = [
        ({"FLAIR": flair}, "channel 'T1' is missing"),
        ({"FLAIR": flair, "T1": t1, "T2": t1}, "channel 'T2' is not an input of this model"),
        ({"FLAIR": flair, "flair": t1, "T1": t1}, "channel 'FLAIR' is given twice"),
        ({"FLAIR": flair, "T1": flair}, "channels 'FLAIR' and 'T1' are the same image"),
        (flair, "the model needs 2 channels"),
    ]
    for inputs, message in cases:
        with pytest.raises(InputImageError, match=message):
            detect(inputs, two_channel_model, device="cpu")


def test_the_main_input_is_the_channel_not_named():
    flair = sphere((8, 8, 8), (1.0, 1.0, 1.0), np.eye(3))
    t1 = sphere((8, 8, 8), (1.0, 1.0, 1.0), np.eye(3))
    assert list(with_main_channel(flair, {"T1": t1}, ["T1", "FLAIR"])) == ["FLAIR", "T1"]
    assert with_main_channel(flair, {}, ["FLAIR"]) is flair
    with pytest.raises(InputImageError, match="left unnamed: FLAIR, T2"):
        with_main_channel(flair, {"T1": t1}, ["FLAIR", "T1", "T2"])
