"""The shipped bundles and sample: they load, verify, and behave the same whatever the scanner's scaling."""

from __future__ import annotations

import numpy as np
import pytest

from LesionDetectLib import detect, list_models, load_model, read_volume
from LesionDetectLib.errors import ModalityMismatchError
from LesionDetectLib.evaluation import Prediction, match_case, reference_lesions, resolve_rule
from LesionDetectLib.samples import SAMPLES, sample_path
from LesionDetectLib.volume import Volume


@pytest.fixture(scope="module")
def sample() -> Volume:
    return read_volume(sample_path(SAMPLES["ms-flair"].image))


@pytest.mark.parametrize("entry", list_models(), ids=lambda entry: entry.name)
def test_every_shipped_bundle_loads_and_verifies(entry):
    model = load_model(entry.name)
    assert model.network("cpu") is not None
    assert model.spec.provenance and model.spec.intended_use


def test_sample_is_a_real_mr_volume(sample):
    assert sample.modality == "MR" and sample.shape_ijk == (131, 164, 130)


MR_MODELS = ("brain-mri-lesions", "flair-hyperintensity-baseline")


@pytest.mark.parametrize("name", MR_MODELS)
def test_mr_model_gives_the_same_lesions_for_raw_rescaled_and_z_scored_input(sample, name):
    model = load_model(name)
    raw = sample.array.astype(np.float32)
    variants = {
        "raw": raw,
        "rescaled": raw * 37.5,
        "z-scored": (raw - raw.mean()) / raw.std(),
    }
    results = {name: detect(sample.with_array(array), model, device="cpu") for name, array in variants.items()}
    reference = results["raw"]
    assert reference.lesions, "both models find lesions in the sample"
    for name, result in results.items():  # float32 rounding may flip a voxel sitting exactly on the threshold
        assert len(result.lesions) == len(reference.lesions), name
        for lesion, expected in zip(result.lesions, reference.lesions):
            np.testing.assert_allclose(lesion.centroid_lps, expected.centroid_lps, atol=1.0, err_msg=name)
            assert abs(lesion.voxel_count - expected.voxel_count) <= max(1, 0.05 * expected.voxel_count), name


@pytest.mark.parametrize("name", MR_MODELS)
def test_an_mr_model_refuses_a_ct(sample, name):
    ct = Volume(np.where(sample.array > 0, 40, -1000).astype(np.int16), sample.spacing, sample.origin,
                sample.direction, modality="CT")
    with pytest.raises(ModalityMismatchError, match="is for MR but the input is CT"):
        detect(ct, load_model(name), device="cpu")
