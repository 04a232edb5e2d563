"""`training.dataset`: datalists (MONAI dataset.json) and nnU-Net folders read into cases."""

from __future__ import annotations

import shutil

import pytest

from LesionDetectLib.training import load_dataset, validate_dataset

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread


def test_dataset_json_is_read_with_tags_and_relative_paths(dataset):
    data = load_dataset(dataset.parent)  # the folder holding dataset.json
    assert data.name == "synthetic lesions" and data.modality == "MR" and data.channels == ("FLAIR",)
    assert [case.id for case in data.training] == [f"case{n}" for n in range(4)]
    assert [case.id for case in data.validation] == ["case4", "case5"]
    assert data.training[1].source == "B" and data.training[0].lesion_type == "multiple sclerosis"
    assert all(case.image.is_file() and case.label.is_file() for case in data.cases)
    infos = validate_dataset(data)
    assert len(infos) == 6 and all(info.lesion_voxels > 0 for info in infos)


def test_nnunet_folder_layout(dataset, tmp_path):
    shutil.copytree(dataset.parent / "imagesTr", tmp_path / "imagesTr")
    shutil.copytree(dataset.parent / "labelsTr", tmp_path / "labelsTr")
    data = load_dataset(tmp_path)
    assert [case.id for case in data.training] == [f"case{n}" for n in range(6)]
    assert data.training[2].image.name == "case2_0000.nii.gz" and data.training[2].label.name == "case2.nii.gz"
    assert not data.problems


def test_filters_keep_only_matching_datalist_items(tmp_path):
    items = [{"image": f"i{n}.nii.gz", "label": f"l{n}.nii.gz", "case": f"c{n}", "lesion_type": kind}
             for n, kind in enumerate(["glioma", "multiple sclerosis", "multiple sclerosis"])]
    path = tmp_path / "datalist.json"
    path.write_text(__import__("json").dumps({"training": items}))
    chosen = load_dataset(path, filters=[("lesion_type", "multiple sclerosis")])
    assert [case.id for case in chosen.cases] == ["c1", "c2"]
    nothing = load_dataset(path, filters=[("lesion_type", "none")])
    assert any("no item with lesion_type=none" in problem for problem in nothing.problems)
