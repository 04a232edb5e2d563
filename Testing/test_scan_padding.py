"""No lesion where a scan holds only padding: the constant background of a skull-stripped MRI or outside a CT's
field of view. A network that fires everywhere (an intensity rule with a level below every value) must
report the brain alone, by `detect` and by training validation alike (one function serves both)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from conftest import oblique_direction, threshold_bundle_spec, write_threshold_bundle

from LesionDetectLib import detect, infer, load_model, preprocess
from LesionDetectLib.volume import Volume


def stripped_brain() -> Volume:
    """A noisy ellipsoidal 'brain' on an exactly constant background, on an oblique anisotropic grid."""
    k, j, i = np.indices((30, 48, 40), dtype=np.float32)
    inside = ((k - 14.5) / 11) ** 2 + ((j - 23.5) / 18) ** 2 + ((i - 19.5) / 15) ** 2 <= 1
    array = np.zeros(inside.shape, np.float32)
    array[inside] = np.random.default_rng(0).normal(300, 20, int(inside.sum()))
    return Volume(array, (1.1, 0.9, 2.0), (30.0, -12.0, 5.0), oblique_direction(), "brain", "MR")


def fire_everywhere_bundle(tmp_path):
    kwargs = {**threshold_bundle_spec("MR")["network"]["kwargs"], "level": -100.0}
    return write_threshold_bundle(tmp_path / "everywhere", **{
        **{key: value for key, value in threshold_bundle_spec("MR", spacing=(1.5, 1.5, 1.5)).items()},
        "network": {"name": "IntensityThreshold", "kwargs": kwargs},
    })


def test_probability_is_zero_on_padding_and_kept_inside(tmp_path):
    model = load_model(fire_everywhere_bundle(tmp_path))
    model_input = preprocess.prepare_input(stripped_brain(), model.spec)
    assert 0.05 < model_input.scanned.mean() < 0.5  # the RAS-aligned model grid holds the oblique box and more
    probability, device = infer.model_grid_probability(
        model.network, model_input, tuple(model.spec.patch_size), 0.25, 2, "cpu")
    assert device == "cpu"
    assert np.all(probability[~model_input.scanned] == 0)
    assert probability[model_input.scanned].min() > 0.99


def test_detect_reports_the_brain_not_the_field_of_view(tmp_path):
    volume = stripped_brain()
    result = detect(volume, load_model(fire_everywhere_bundle(tmp_path)), device="cpu")
    assert len(result.lesions) == 1
    brain = volume.array != 0
    found = result.label_map > 0
    assert (found & brain).sum() / brain.sum() > 0.97  # the whole brain …
    rim = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.GetImageFromArray(brain.astype(np.uint8)), [2, 2, 1])) > 0
    assert not (found & ~rim).any()  # … and nothing beyond ~2 mm of it (linear resampling of 1.5 mm voxels)
