"""`training.checks`: every file of a dataset read before training, every problem reported at once."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from training_cases import synthetic_case, tiny_recipe, write_image

from LesionDetectLib.errors import DatasetError
from LesionDetectLib.training import train

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread


def test_every_dataset_problem_is_reported_at_once_before_training(dataset, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(dataset.parent, root)
    image, label, _ = synthetic_case(7)
    write_image(label, root / "labelsTr" / "shifted.nii.gz", origin=(0.0, 0.0, 0.0))
    write_image(label, root / "labelsTr" / "coarse.nii.gz", spacing=(1.2, 0.9, 3.0))
    write_image(np.zeros_like(label), root / "labelsTr" / "empty.nii.gz")
    flat = sitk.GetImageFromArray(image[8])
    sitk.WriteImage(flat, str(root / "imagesTr" / "flat.nii.gz"))
    (root / "imagesTr" / "garbage.nii.gz").write_bytes(b"not an image at all" * 10)
    good = {"image": "imagesTr/case0_0000.nii.gz", "label": "labelsTr/case0.nii.gz"}
    items = [
        {**good, "case": "ok"},
        {"image": "imagesTr/nowhere.nii.gz", "label": "labelsTr/case1.nii.gz", "case": "no-image"},
        {"image": "imagesTr/case1_0000.nii.gz", "label": "labelsTr/nowhere.nii.gz", "case": "no-label"},
        {"image": "imagesTr/case2_0000.nii.gz", "label": "labelsTr/shifted.nii.gz", "case": "moved"},
        {"image": "imagesTr/case3_0000.nii.gz", "label": "labelsTr/coarse.nii.gz", "case": "respaced"},
        {"image": "imagesTr/case4_0000.nii.gz", "label": "labelsTr/empty.nii.gz", "case": "empty"},
        {"image": "imagesTr/flat.nii.gz", "label": "labelsTr/case5.nii.gz", "case": "flat"},
        {"image": "imagesTr/garbage.nii.gz", "label": "labelsTr/case5.nii.gz", "case": "garbage"},
        {"image": "imagesTr/case5_0000.nii.gz", "case": "unlabelled"},
        {**good, "case": "ok"},
    ]
    (root / "dataset.json").write_text(json.dumps({"name": "broken", "training": items}))
    out = tmp_path / "model"
    with pytest.raises(DatasetError) as caught:
        train(root, out, tiny_recipe(), progress="none")
    error = caught.value
    assert error.exit_code == 6
    expected = [
        "case no-image: image file", "case no-label: label file", "case moved: label geometry differs",
        "case respaced: label geometry differs", "case empty: label", "case flat: image", "case garbage: image",
        "training[8] needs an 'image' and a 'label'", "share the case id(s) ok",
    ]
    for fragment in expected:
        assert sum(fragment in problem for problem in error.problems) == 1, (fragment, error.problems)
        assert fragment in str(error)
    assert len(error.problems) == len(expected)
    assert "origin" in str(error) and "spacing" in str(error) and "is empty" in str(error)
    assert "2-D" in str(error) and "missing" in str(error)
    assert not (out / "checkpoints").exists() and not (out / "model.json").exists()
