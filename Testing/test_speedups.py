"""Every speed-up keeps the outputs: stated tolerances, on synthetic volumes and (when present) a real CT.

- Skipping windows without body/brain: probabilities inside the foreground equal the full sliding window's
  within 1e-5 (float32 blending order), background probabilities only decrease, lesions are identical.
- NumPy intensity normalisation: equal to MONAI's ``ScaleIntensityRange``/``NormalizeIntensity`` within 1e-6.
- CPU batch of at least 2: probabilities equal to batch 1 within 1e-5.
- Resampling back onto the input grid without a full-resolution reference image: bit-identical.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    SHARED_DATA,
    make_volume,
    needs_shared_data,
    threshold_bundle_spec,
    write_threshold_bundle,
)

from LesionDetectLib import detect, infer, load_model, preprocess
from LesionDetectLib.io import read_volume
from LesionDetectLib.lesions import from_probability
from LesionDetectLib.volume import Volume

FOREGROUND_TOLERANCE = 1e-5
REPOSITORY = Path(__file__).resolve().parents[1]


def small_unet(seed: int = 0):
    """A random-weight MONAI UNet (instance norm, PReLU, strided and transposed convolutions) that runs fast."""
    from monai.networks.nets import UNet

    torch.manual_seed(seed)
    return UNet(3, 1, 1, (4, 8, 16), (2, 2), num_res_units=1).eval()


class CountingNetwork(torch.nn.Module):
    """Counts the patches a network is run on."""

    def __init__(self, network):
        super().__init__()
        self.network, self.patches = network, 0

    def forward(self, x):
        self.patches += int(x.shape[0])
        return self.network(x)


def body_in_a_corner(shape=(48, 40, 56)) -> tuple[np.ndarray, np.ndarray]:
    """A normalised image ``[1, x, y, z]`` whose body fills one corner: most 16³ windows hold only background."""
    rng = np.random.default_rng(1)
    image = np.zeros((1, *shape), np.float32)
    body = np.zeros(shape, bool)
    body[:20, :18, :25] = True
    image[0][body] = rng.normal(0.5, 0.2, size=int(body.sum()))
    image[0, 5:9, 6:10, 8:12] = 1.0  # a bright "lesion"
    return image, body


def test_skipped_windows_leave_the_foreground_unchanged():
    image, body = body_in_a_corner()
    network = CountingNetwork(small_unet())
    full = infer.probabilities(network, image, (16, 16, 16), 0.25, 2, "cpu")
    patches_full, network.patches = network.patches, 0
    skipped = infer.probabilities(network, image, (16, 16, 16), 0.25, 2, "cpu", foreground=body)
    assert network.patches < patches_full / 2  # most windows were not run
    np.testing.assert_allclose(skipped[body], full[body], rtol=0, atol=FOREGROUND_TOLERANCE)
    assert np.all(skipped[~body] <= full[~body] + FOREGROUND_TOLERANCE)  # background only ever decreases
    assert skipped.dtype == np.float32 and skipped.shape == body.shape


def test_all_background_batches_and_mixed_batches():
    """Batches with no foreground window, and batches mixing both, give the full run's foreground values."""
    image, body = body_in_a_corner()
    network = small_unet(seed=3)
    for batch in (1, 3, 4):
        full = infer.probabilities(network, image, (16, 16, 16), 0.5, batch, "cpu")
        skipped = infer.probabilities(network, image, (16, 16, 16), 0.5, batch, "cpu", foreground=body)
        np.testing.assert_allclose(skipped[body], full[body], rtol=0, atol=FOREGROUND_TOLERANCE)


def test_nothing_is_skipped_when_everything_is_foreground():
    image, _ = body_in_a_corner()
    everywhere = np.ones(image.shape[1:], bool)
    network = small_unet()
    full = infer.probabilities(network, image, (16, 16, 16), 0.25, 2, "cpu")
    masked = infer.probabilities(network, image, (16, 16, 16), 0.25, 2, "cpu", foreground=everywhere)
    np.testing.assert_array_equal(masked, full)


def test_cpu_batch_of_two_gives_the_same_probabilities_as_batch_one():
    image, _ = body_in_a_corner()
    network = small_unet()
    one = infer.probabilities(network, image, (16, 16, 16), 0.25, 1, "cpu")
    two = infer.probabilities(network, image, (16, 16, 16), 0.25, 2, "cpu")
    np.testing.assert_allclose(two, one, rtol=0, atol=FOREGROUND_TOLERANCE)
    assert infer.default_batch_size(1, "cpu") == 2 and infer.default_batch_size(4, "cpu") == 4
    assert infer.default_batch_size(1, "cuda") == 1


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_ct_window_matches_monai(dtype):
    from monai.transforms import ScaleIntensityRange

    array = np.random.default_rng(0).normal(0, 400, size=(30, 20, 25)).astype(dtype)
    before = array.copy()
    expected = np.asarray(ScaleIntensityRange(a_min=-200.0, a_max=300.0, b_min=0.0, b_max=1.0, clip=True)(array))
    ours = preprocess.normalise_intensity(array, {"kind": "ct", "window": [-200.0, 300.0]})
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(array, before)  # the input is not modified


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_mr_zscore_matches_monai(dtype):
    from monai.transforms import NormalizeIntensity

    rng = np.random.default_rng(0)
    array = np.zeros((30, 20, 25), dtype)
    array[5:25, 4:16, 5:20] = rng.normal(300, 80, size=(20, 12, 15)).astype(dtype)
    before = array.copy()
    mask = preprocess.foreground_mask(array)
    low, high = np.percentile(array[mask], [0.5, 99.5])
    clipped = np.clip(array, low, high).astype(np.float32)
    normalise = NormalizeIntensity(subtrahend=float(clipped[mask].mean()), divisor=float(clipped[mask].std()))
    expected = np.asarray(normalise(clipped), dtype=np.float32)
    expected[~mask] = 0.0
    ours = preprocess.normalise_intensity(array, {"kind": "mr", "percentiles": [0.5, 99.5]})
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(array, before)


def test_body_mask_is_not_air_for_ct_and_not_background_for_mr():
    ct = np.full((10, 10, 10), -1000.0, np.float32)
    ct[2:6, 2:6, 2:6] = 40.0
    ct[3, 3, 3] = -800.0  # air inside the body (lung, bowel gas)
    assert preprocess.body_mask(ct, "ct").sum() == 4**3 - 1
    mr = np.zeros((10, 10, 10), np.float32)
    mr[1:9, 1:9, 1:9] = 5.0
    assert preprocess.body_mask(mr, "mr").sum() == 8**3
    noisy = np.random.default_rng(0).random((6, 6, 6)).astype(np.float32)  # no constant background
    assert preprocess.body_mask(noisy, "mr").all()


def test_model_input_and_its_masks_lie_on_the_model_grid(tmp_path):
    volume = make_volume(background=-1000.0)
    spec = load_model(write_threshold_bundle(tmp_path / "bundle")).spec
    model_input = preprocess.prepare_input(volume, spec)
    assert model_input.grid == preprocess.model_grid(volume, tuple(spec.spacing))
    assert model_input.image.shape[1:] == model_input.foreground.shape == model_input.scanned.shape


def test_resampling_back_needs_no_full_resolution_reference_image():
    """`to_input_grid` (output geometry given directly) equals resampling onto a reference image, exactly."""
    import SimpleITK as sitk

    volume = make_volume()
    resampled, grid = preprocess.to_model_grid(volume, (1.5, 1.5, 1.5))
    image = sitk.GetImageFromArray(np.ascontiguousarray(resampled.transpose(2, 1, 0)))
    image.SetSpacing(grid.spacing)
    image.SetOrigin(grid.origin)
    image.SetDirection(preprocess.RAS_DIRECTION_IN_LPS.ravel().tolist())
    reference = volume.with_array(np.zeros(volume.array.shape, np.uint8)).to_sitk()
    expected = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    np.testing.assert_array_equal(preprocess.to_input_grid(resampled, grid, volume), sitk.GetArrayFromImage(expected))


def ct_in_a_large_field_of_view() -> Volume:
    """A CT-like volume (air -1000 HU) whose body fills a corner, with two bright lesions, on an oblique grid."""
    array = np.full((40, 64, 72), -1000.0, np.float32)
    array += np.random.default_rng(0).normal(0, 10, size=array.shape).astype(np.float32)
    array[:, :30, :32] = 20.0
    array[10:16, 8:14, 6:14] = 90.0
    array[24:30, 18:26, 20:27] = 80.0
    return Volume(array, (1.0, 1.1, 1.5), (10.0, -20.0, 30.0), make_volume().direction, "ct", "CT")


def full_sliding_window(monkeypatch):
    """Make `detect` run every window: the body mask says everything is foreground."""
    monkeypatch.setattr(preprocess, "body_mask", lambda resampled, kind, scanned=None: np.ones(resampled.shape, bool))


def assert_same_detection(fast, full, volume: Volume, model_input) -> None:
    assert [lesion.as_row() for lesion in fast.lesions] == [lesion.as_row() for lesion in full.lesions]
    np.testing.assert_array_equal(fast.label_map, full.label_map)
    body = preprocess.to_input_grid(model_input.foreground.astype(np.float32), model_input.grid, volume) > 0.999
    np.testing.assert_allclose(fast.probability[body], full.probability[body], rtol=0, atol=FOREGROUND_TOLERANCE)


def test_detect_skipping_air_gives_the_same_lesions(tmp_path, monkeypatch):
    volume = ct_in_a_large_field_of_view()
    model = load_model(write_threshold_bundle(tmp_path / "bundle", patch_size=[16, 16, 16]))
    model_input = preprocess.prepare_input(volume, model.spec)
    assert model_input.foreground.mean() < 0.5  # there is air to skip
    fast = detect(volume, model, device="cpu")
    full_sliding_window(monkeypatch)
    full = detect(volume, model, device="cpu")
    assert len(fast.lesions) == 2
    assert_same_detection(fast, full, volume, model_input)


@pytest.mark.shared_data
@needs_shared_data
def test_real_ct_with_a_cnn_skipping_air_gives_the_same_probabilities():
    """A real torso CT through a random-weight UNet: foreground probabilities and lesions are unchanged."""
    path = SHARED_DATA / "real-ct-nifti" / "ct_3mm.nii.gz"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    volume = read_volume(path)
    spacing, intensity = (3.0, 3.0, 3.0), {"kind": "ct", "window": [-200.0, 300.0]}
    resampled, grid = preprocess.to_model_grid(volume, spacing)
    body = preprocess.body_mask(resampled, "ct")
    image = preprocess.normalise_intensity(resampled, intensity)[None]
    network = CountingNetwork(small_unet())
    full = infer.probabilities(network, image, (32, 32, 32), 0.25, 2, "cpu")
    patches_full, network.patches = network.patches, 0
    fast = infer.probabilities(network, image, (32, 32, 32), 0.25, 2, "cpu", foreground=body)
    assert network.patches <= patches_full
    np.testing.assert_allclose(fast[body], full[body], rtol=0, atol=FOREGROUND_TOLERANCE)
    threshold = float(np.quantile(full[body], 0.99))  # the random network's most confident 1 % of the body
    found = [from_probability(preprocess.to_input_grid(p * body, grid, volume), volume, threshold, 50.0,
                              measure_surfaces=False) for p in (fast, full)]
    assert [lesion.as_row() for lesion in found[0][0]] == [lesion.as_row() for lesion in found[1][0]]
    np.testing.assert_array_equal(found[0][1], found[1][1])


@pytest.mark.shared_data
@needs_shared_data
def test_real_brain_mr_skipping_background_gives_the_same_lesions(tmp_path, monkeypatch):
    """A real skull-stripped BraTS FLAIR: the brain mask skips windows, lesions are unchanged."""
    flairs = sorted((SHARED_DATA / "brain-tumour-mri").glob("*/flair.nii.gz"))
    if not flairs:
        pytest.skip("no BraTS FLAIR in the shared data")
    volume = read_volume(flairs[0])
    spec = threshold_bundle_spec("MR", spacing=(2.0, 2.0, 2.0))
    spec["network"]["kwargs"]["level"] = 2.5  # hyper-intense: z-score above 2.5
    spec.update(patch_size=[32, 32, 32], min_lesion_mm3=10.0, name="mr-test")
    model = load_model(write_threshold_bundle(tmp_path / "bundle", **spec))
    model_input = preprocess.prepare_input(volume, model.spec)
    assert not model_input.foreground.all()
    fast = detect(volume, model, device="cpu")
    full_sliding_window(monkeypatch)
    full = detect(volume, model, device="cpu")
    assert_same_detection(fast, full, volume, model_input)


def test_infer_makes_openmp_wait_passively_unless_told_otherwise():
    code = "import os, LesionDetectLib.infer; print(os.environ['OMP_WAIT_POLICY'])"
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPOSITORY), *filter(None, [os.environ.get("PYTHONPATH")])])
    passive = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert passive.stdout.strip() == "PASSIVE"
    active = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                            capture_output=True, text=True, check=True)
    assert active.stdout.strip() == "ACTIVE"

