"""Warnings for inputs unlike a model's training data: a brain model given a head with skull and scalp, the
extremity CT model given the trunk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SHARED_DATA, needs_shared_data, oblique_direction, write_threshold_bundle

from LesionDetectLib.bundles import load_model
from LesionDetectLib.detect import detect
from LesionDetectLib.errors import ModelBundleError
from LesionDetectLib.input_checks import (
    EXTREMITY,
    MAX_BRAIN_ML,
    SKULL_STRIPPED,
    input_warnings,
    internal_air_ml,
    tissue_volume_ml,
)
from LesionDetectLib.io import read_volume
from LesionDetectLib.volume import Volume

SPACING = (1.2, 0.9, 2.0)  # anisotropic: millilitres must use all three spacings


def ellipsoid(shape_kji, radii_mm, spacing=SPACING) -> np.ndarray:
    k, j, i = np.indices(shape_kji, dtype=np.float32)
    centre = [(n - 1) / 2 for n in shape_kji]
    offsets = [(k - centre[0]) * spacing[2], (j - centre[1]) * spacing[1], (i - centre[2]) * spacing[0]]
    return sum((o / r) ** 2 for o, r in zip(offsets, radii_mm)) <= 1.0


def head(skull: bool, seed: int = 0) -> Volume:
    """A brain-sized ellipsoid (1.3 L) on zero background; with ``skull``, inside a scalp-bright head (2.8 L)
    separated from it by a dark skull."""
    shape = (100, 220, 180)
    rng = np.random.default_rng(seed)
    array = np.zeros(shape, np.float32)
    if skull:
        array += rng.normal(8, 3, shape).astype(np.float32).clip(0)  # air noise, as in an unstripped scan
        array[ellipsoid(shape, (85, 100, 80))] = 300.0  # scalp and soft tissue
        array[ellipsoid(shape, (77, 92, 72))] = 20.0  # skull: dark on MR
    brain = ellipsoid(shape, (60, 72, 70))
    array[brain] = rng.normal(400, 30, int(brain.sum())).astype(np.float32)
    return Volume(array, SPACING, (-90.0, 120.0, -30.0), oblique_direction(), "head")


def test_tissue_volume_is_the_brain_on_a_stripped_scan_and_the_head_otherwise():
    brain_ml = 4 / 3 * np.pi * 60 * 72 * 70 / 1000
    assert tissue_volume_ml(head(skull=False)) == pytest.approx(brain_ml, rel=0.03)
    assert tissue_volume_ml(head(skull=True)) == pytest.approx(4 / 3 * np.pi * 85 * 100 * 80 / 1000, rel=0.03)


def test_large_inputs_are_shrunk_before_the_check(monkeypatch):
    import LesionDetectLib.input_checks as checks

    monkeypatch.setattr(checks, "MAX_CHECK_VOXELS", 300_000)
    assert tissue_volume_ml(head(skull=False)) == pytest.approx(4 / 3 * np.pi * 60 * 72 * 70 / 1000, rel=0.05)


def test_skull_warning_only_for_unstripped_input():
    assert input_warnings(head(skull=False), [SKULL_STRIPPED]) == []
    (message,) = input_warnings(head(skull=True), [SKULL_STRIPPED])
    assert "does not look skull-stripped" in message and "2.8 L" in message
    assert input_warnings(head(skull=True), []) == []


@needs_shared_data
@pytest.mark.parametrize(("relative", "stripped"), [
    ("brain-tumour-mri/Brats18_2013_20_1/flair.nii.gz", True),
    ("brain-tumour-mri/Brats18_CBICA_AME_1/flair.nii.gz", True),  # the largest training brain (1.7 L)
    ("ms-lesion-mri/patient07/flair.nii.gz", True),
    ("real-tumour-mri/brain1_image.nrrd", False),
    ("real-tumour-mri/brain2_image.nrrd", False),
])
def test_real_scans_stripped_and_not(relative, stripped):
    volume = read_volume(SHARED_DATA / relative)
    assert (tissue_volume_ml(volume) <= MAX_BRAIN_ML) is stripped
    assert (input_warnings(volume, [SKULL_STRIPPED]) == []) is stripped


def body_ct(lungs: bool) -> Volume:
    """An elliptic trunk-sized body of soft tissue (40 HU) in air; with ``lungs``, two air-filled ellipsoids
    inside it (2 × 0.42 L)."""
    shape = (80, 160, 200)
    array = np.full(shape, -1000, np.int16)
    array[ellipsoid(shape, (200, 120, 160))] = 40
    if lungs:
        k, j, i = np.indices(shape)
        for side in (-1, 1):
            offsets = ((k - 39.5) * SPACING[2], (j - 79.5) * SPACING[1], (i - 99.5 - side * 50) * SPACING[0])
            array[sum((o / r) ** 2 for o, r in zip(offsets, (60, 60, 28))) <= 1] = -850
    return Volume(array, SPACING, (-90.0, 120.0, -30.0), oblique_direction(), "body", modality="CT")


def test_trunk_warning_only_when_air_is_enclosed_by_the_body():
    assert internal_air_ml(body_ct(lungs=False)) == 0
    assert internal_air_ml(body_ct(lungs=True)) == pytest.approx(2 * 4 / 3 * np.pi * 60 * 60 * 28 / 1000, rel=0.05)
    assert input_warnings(body_ct(lungs=False), [EXTREMITY]) == []
    (message,) = input_warnings(body_ct(lungs=True), [EXTREMITY])
    assert "looks like a CT of the trunk" in message


@needs_shared_data
@pytest.mark.parametrize(("relative", "limb"), [
    ("ct-soft-tissue-sarcoma/STS_036/image.nii.gz", True),  # the most enclosed air of the 45 crops (69 mL)
    ("ct-soft-tissue-sarcoma/STS_001/image.nii.gz", True),
    ("real-ct-nifti/ct_3mm.nii.gz", False),
    ("real-ct-nifti/ct_1p5mm_crop.nii.gz", False),
])
def test_real_cts_limb_and_trunk(relative, limb):
    assert (input_warnings(read_volume(SHARED_DATA / relative), [EXTREMITY]) == []) is limb


def test_detect_and_cli_report_the_warning(tmp_path, capsys):
    from LesionDetectLib.cli import main

    bundle = write_threshold_bundle(tmp_path / "mr", modality="MR", input_requirements=[SKULL_STRIPPED],
                                    **{"name": "test-brain"})
    volume = head(skull=True)
    result = detect(volume, load_model(bundle), skull_strip=False)
    assert any("skull-stripped" in warning for warning in result.warnings)
    path = tmp_path / "head.nrrd"
    sitk.WriteImage(volume.to_sitk(), str(path))
    assert main(["detect", str(path), "-o", str(tmp_path / "out"), "--model", str(bundle), "--quiet",
                 "--no-skull-strip"]) == 0
    assert "lesiondetect: warning:" in capsys.readouterr().err
    written = json.loads((tmp_path / "out" / "head.lesions.json").read_text())
    assert any("skull-stripped" in warning for warning in written["warnings"])


def test_unknown_requirement_is_refused(tmp_path):
    with pytest.raises(ModelBundleError, match="input_requirements"):
        write_threshold_bundle(tmp_path / "bad", input_requirements=["bias-corrected"])
