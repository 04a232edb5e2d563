"""Training: dataset checks and splits, preprocessing parity, augmentation, and short real training runs.

The synthetic cases are written as NIfTI with an oblique direction, anisotropic spacing and a non-zero
origin: an ellipsoid "body" of noisy tissue on a zero background holding one bright sphere (the lesion).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from training_cases import LESION_RADIUS_MM, SPACING, synthetic_case, tiny_recipe, write_dataset, write_image

from LesionDetectLib import detect, read_volume
from LesionDetectLib.bundles import import_model, open_bundle
from LesionDetectLib.errors import DatasetError, LesionDetectError
from LesionDetectLib.lesions import Lesion
from LesionDetectLib.training import Recipe, load_dataset, split_cases, train, validate_dataset
from LesionDetectLib.training.bundle import model_spec
from LesionDetectLib.training.dataset import Case, LabelledDataset
from LesionDetectLib.training.splits import fold_assignment

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread

@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("dataset"), count=6, validation=2)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> Path:
    """A 2-epoch training run (validating every epoch) on the synthetic dataset."""
    out = tmp_path_factory.mktemp("run") / "model"
    torch.set_num_threads(1)
    train(dataset, out, tiny_recipe(), progress="none")
    return out


# ------------------------------------------------------------------------------------------ datasets


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


def test_cli_reports_dataset_problems_in_one_line(tmp_path):
    from LesionDetectLib.cli import SUBCOMMANDS

    if "train" not in SUBCOMMANDS:
        pytest.skip("the train sub-command is not registered in LesionDetectLib.cli")
    items = [{"image": "a.nii.gz", "label": "a_label.nii.gz"}, {"image": "b.nii.gz", "label": "b_label.nii.gz"}]
    (tmp_path / "dataset.json").write_text(json.dumps({"training": items}))
    repository = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "LesionDetectLib", "train", str(tmp_path), "-o", str(tmp_path / "model")],
        cwd=repository, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 6, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("lesiondetect: error: dataset") and "4 problem(s)" in line
    assert all(name in line for name in ("a.nii.gz", "a_label.nii.gz", "b.nii.gz", "b_label.nii.gz"))
    assert not (tmp_path / "model").exists()


def test_split_is_case_level_deterministic_and_stratified():
    cases = tuple(Case(f"c{n:02d}", Path(f"i{n}"), Path(f"l{n}"), source="AAAAAAABBC"[n % 10]) for n in range(20))
    data = LabelledDataset("d", Path("."), cases)
    first, again = split_cases(data, val_fraction=0.25, seed=3), split_cases(data, val_fraction=0.25, seed=3)
    assert first == again
    assert {c.id for c in first.training} | {c.id for c in first.validation} == {c.id for c in cases}
    assert not {c.id for c in first.training} & {c.id for c in first.validation}
    for part in (first.training, first.validation):
        assert {case.source for case in part} == {"A", "B", "C"}
    assert split_cases(data, val_fraction=0.25, seed=4).validation != first.validation
    assert split_cases(data, val_fraction=0.0).validation == ()

    folds = [split_cases(data, folds=4, fold=f, seed=1) for f in range(4)]
    validated = [case.id for split in folds for case in split.validation]
    assert sorted(validated) == sorted(case.id for case in cases)  # every case validated exactly once
    assert all({"A", "B"} <= {case.source for case in split.validation} for split in folds)  # C has 2 cases
    assert fold_assignment(cases, 4, 1) == fold_assignment(tuple(reversed(cases)), 4, 1)
    with pytest.raises(LesionDetectError):
        split_cases(data, folds=4, val_fraction=0.2)


# ------------------------------------------------------------------------------------------ pieces


def test_training_arrays_are_the_inference_preprocessing(dataset):
    from LesionDetectLib import preprocess
    from LesionDetectLib.training.transforms import prepare_case

    case = load_dataset(dataset).training[0]
    intensity = {"kind": "mr", "percentiles": [0.5, 99.5]}
    image, label, body = prepare_case(case.image, case.label, (1.5, 1.5, 1.5), intensity)
    spec = argparse.Namespace(spacing=[1.5, 1.5, 1.5], intensity=intensity)
    expected = preprocess.prepare_input(read_volume(case.image), spec).image
    np.testing.assert_array_equal(image, expected)
    assert label.shape == body.shape == expected.shape and set(np.unique(label)) == {0, 1}
    assert body[label > 0].all()  # the lesion lies inside the body mask
    assert 0 < body.mean() < 1


def test_random_patches_copy_paste_and_cache(dataset):
    from LesionDetectLib.training.copy_paste import CopyPasted, lesion_bank
    from LesionDetectLib.training.transforms import RepeatedCases, cached_cases, random_transforms

    recipe = tiny_recipe(positive_fraction=1.0, samples_per_case=3)
    intensity = {"kind": "mr", "percentiles": [0.5, 99.5]}
    cases = cached_cases(load_dataset(dataset).training[:2], recipe, intensity, "MR", Path("unused"), 0)
    before = cases[0]["image"].clone()
    chain = random_transforms(recipe)
    chain.set_random_state(seed=0)
    patches = chain(RepeatedCases(cases, 2)[0])
    assert len(patches) == 3
    for patch in patches:
        assert set(patch) == {"image", "label"} and tuple(patch["image"].shape) == (1, 24, 24, 24)
        assert patch["image"].dtype == torch.float32 and patch["label"].sum() > 0  # centred on the lesion
    assert torch.equal(cases[0]["image"], before)  # the cache is never modified

    bank = lesion_bank([cases[0]], recipe.patch_size)
    assert len(bank) == 1 and bank[0].mask.sum() == int((cases[0]["label"] > 0).sum())
    untouched = cases[1]["image"].clone()
    target = {**cases[1], "label": torch.zeros_like(cases[1]["label"])}
    paste = CopyPasted(bank, prob=1.0, max_objects=1)
    paste.set_random_state(seed=1)
    pasted = paste(target)
    added = pasted["label"][0].numpy() > 0
    assert added.sum() > 0.5 * bank[0].mask.sum()
    assert cases[1]["body"][0].numpy()[added].mean() >= 0.9  # inside the body
    changed = (pasted["image"] != target["image"])[0].numpy()
    assert changed[added].all() or changed[added].mean() > 0.9
    assert torch.equal(cases[1]["image"], untouched)


# ------------------------------------------------------------------------------------------ training


def test_select_last_ships_the_final_epoch_whatever_validation_says(dataset, tmp_path):
    out = tmp_path / "last"
    train(dataset, out, tiny_recipe(select_metric="last", epochs=3, iterations_per_epoch=2), progress="none")
    spec = open_bundle(out).spec
    assert spec.provenance["training"]["weights_epoch"] == 3 and spec.metrics["validation"]["epoch"] == 3
    shipped = torch.load(out / "weights.pt", weights_only=True)
    final = torch.load(out / "checkpoints" / "last.pt", weights_only=False)["network"]
    assert all(torch.equal(shipped[name], final[name].cpu()) for name in shipped)


def test_training_writes_a_bundle_that_detect_uses(trained, dataset, isolated_models):
    model = open_bundle(trained)  # checksum verified
    spec = model.spec
    assert spec.name == "synthetic-lesions" and spec.modality == "MR" and spec.network["name"] == "UNet"
    assert spec.spacing == [1.5, 1.5, 1.5] and spec.patch_size == [24, 24, 24]
    assert spec.intensity == {"kind": "mr", "percentiles": [0.5, 99.5]}
    provenance = spec.provenance
    assert provenance["dataset"]["training_cases"] == 4 and provenance["dataset"]["validation_cases"] == 2
    assert provenance["dataset"]["validation_case_ids"] == ["case4", "case5"]
    assert provenance["training"]["epochs"] == 2 and provenance["training"]["seed"] == 0
    assert provenance["training"]["recipe"]["patch_size"] == [24, 24, 24]
    assert {"torch", "monai", "SimpleITK", "numpy", "python"} <= set(provenance["software"])
    assert provenance["training"]["hardware"]["device"] == "cpu"
    validation = spec.metrics["validation"]
    assert validation["cases"] == 2 and validation["lesions"] == 2 and validation["lesion_rule"] == "ms"
    assert {"dice", "sensitivity", "precision", "f1", "fp_per_case", "cpm"} <= set(validation)
    json.loads((trained / "model.json").read_text())  # strict JSON

    rows = list(csv.DictReader((trained / "training_log.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2"] and all(row["val_dice"] != "" for row in rows)
    assert (trained / "training_curves.png").stat().st_size > 1000
    assert {"last.pt", "best.pt"} <= {p.name for p in (trained / "checkpoints").iterdir()}

    volume = read_volume(load_dataset(dataset).validation[0].image)
    result = detect(volume, model, device="cpu", max_lesions=20)
    assert result.label_map.shape == volume.array.shape == result.probability.shape
    assert result.probability.dtype == np.float32 and 0 <= result.probability.min() <= result.probability.max() <= 1
    assert all(isinstance(lesion, Lesion) for lesion in result.lesions)
    for lesion in result.lesions:
        assert all(-0.5 <= c <= n - 0.5 for c, n in zip(lesion.centroid_ijk, volume.shape_ijk))
    assert set(np.unique(result.label_map)) <= set(range(len(result.lesions) + 1))

    # validation during training saw exactly what detect returns for these weights
    from LesionDetectLib.training.validation import predict_case, prepare_validation

    case = load_dataset(dataset).validation[0]
    (item,) = prepare_validation([case], spec, "ms")
    found, label_map = predict_case(model.network("cpu"), item, spec, "cpu")
    full = detect(volume, model, device="cpu")
    assert [lesion.centroid_lps for lesion in found] == [lesion.centroid_lps for lesion in full.lesions]
    np.testing.assert_array_equal(label_map, full.label_map)

    assert import_model(trained) == isolated_models / spec.name  # lesiondetect models import MODEL_DIR
    assert open_bundle(isolated_models / spec.name).spec == spec


def test_resume_continues_the_log_and_the_weights(trained, dataset, tmp_path):
    from LesionDetectLib.training.checkpoints import load_checkpoint

    with pytest.raises(LesionDetectError, match="--resume"):
        train(dataset, trained, tiny_recipe(), progress="none")
    with pytest.raises(LesionDetectError, match="lr"):
        train(dataset, trained, {"epochs": 3, "lr": 0.1}, resume=True, progress="none")
    resumed = tmp_path / "resumed"
    shutil.copytree(trained, resumed)
    before = load_checkpoint(resumed / "checkpoints" / "last.pt")
    result = train(dataset, resumed, {"epochs": 3}, resume=True, progress="none")
    after = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert result.epochs == 3 and after["epoch"] == 3 and after["step"] == 9
    assert any(not torch.equal(before["network"][k], after["network"][k]) for k in before["network"])
    rows = list(csv.DictReader((resumed / "training_log.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert open_bundle(resumed).spec.provenance["training"]["epochs"] == 3


def test_an_interrupted_run_resumes_to_the_same_weights(dataset, tmp_path, monkeypatch):
    from LesionDetectLib.training import loop
    from LesionDetectLib.training.checkpoints import load_checkpoint

    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    recipe = tiny_recipe(epochs=3, val_interval=3, iterations_per_epoch=2, copy_paste=0.5)
    train(dataset, straight, recipe, progress="none")
    recipe = recipe.updated(cache="disk", num_workers=1)  # same data, same draws: PersistentDataset, a worker
    epoch_of = loop.Trainer._epoch

    def crash_in_third_epoch(self, loader, epoch, reporter):
        if epoch == 2:
            raise KeyboardInterrupt
        return epoch_of(self, loader, epoch, reporter)

    monkeypatch.setattr(loop.Trainer, "_epoch", crash_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(dataset, interrupted, recipe, progress="none")
    monkeypatch.undo()
    assert load_checkpoint(interrupted / "checkpoints" / "last.pt")["epoch"] == 2
    train(dataset, interrupted, resume=True, progress="none")
    expected = load_checkpoint(straight / "checkpoints" / "last.pt")
    got = load_checkpoint(interrupted / "checkpoints" / "last.pt")
    assert got["epoch"] == expected["epoch"] == 3
    for key, value in expected["network"].items():
        torch.testing.assert_close(got["network"][key], value, rtol=0, atol=0)
    assert (interrupted / "training_log.csv").read_text().count("\n") == 4
    assert any((interrupted / "cache").rglob("*.pt"))


def test_cli_options_become_the_recipe(dataset):
    from LesionDetectLib.cli import train as cli_train

    parser = argparse.ArgumentParser()
    cli_train.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args([
        "train", str(dataset), "-o", "out", "--recipe", "cpu", "--spacing", "2", "--patch-size", "32,32,16",
        "--intensity", "ct:-100,200", "--copy-paste", "0.3", "--no-flip", "--epochs", "7", "--seed", "5",
        "--network-kwargs", '{"channels": [8, 16, 32, 64, 128]}', "--folds", "5", "--fold", "2",
        "--input-requirement", "skull-stripped",
    ])
    assert args.run is cli_train.run and args.folds == 5 and args.fold == 2 and not args.resume
    recipe = cli_train.recipe_changes(args)
    assert recipe.spacing == (2.0, 2.0, 2.0) and recipe.patch_size == (32, 32, 16)
    assert recipe.intensity == {"kind": "ct", "window": [-100.0, 200.0]}
    assert recipe.copy_paste == 0.3 and recipe.flip is False and recipe.epochs == 7 and recipe.seed == 5
    assert recipe.network_kwargs["channels"] == [8, 16, 32, 64, 128] and recipe.network_kwargs["num_res_units"] == 1
    assert recipe.input_requirements == ("skull-stripped",)
    assert model_spec(recipe, "m", "MR", recipe.resolved_intensity("MR"), [], "")["input_requirements"] == [
        "skull-stripped"]
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    assert recipe.lr == Recipe().lr  # untouched options keep the preset's value
    resumed = parser.parse_args(["train", str(dataset), "-o", "out", "--resume", "--epochs", "9"])
    assert cli_train.recipe_changes(resumed) == {"epochs": 9}
    with pytest.raises(SystemExit):
        parser.parse_args(["train", str(dataset), "-o", "out", "--spacing", "0"])


def test_a_short_training_finds_a_bright_lesion(tmp_path):
    """125 iterations on easy synthetic data: the lesion of an unseen volume is found (centroid inside it)."""
    data = write_dataset(tmp_path / "data", count=4, seed=1)
    recipe = tiny_recipe(epochs=5, iterations_per_epoch=25, val_interval=5, warmup_epochs=0, affine=False,
                         intensity_augment=False)
    train(data, tmp_path / "model", recipe, val_fraction=0.0, progress="none")
    image, _, centre_ijk = synthetic_case(seed=999)
    volume = read_volume(write_image(image, tmp_path / "unseen.nii.gz"))
    result = detect(volume, open_bundle(tmp_path / "model"), device="cpu")
    assert result.lesions, "no lesion found"
    best = result.lesions[0]  # the most confident
    distance = np.linalg.norm((np.array(best.centroid_ijk) - centre_ijk) * np.array(SPACING))
    assert distance < LESION_RADIUS_MM and best.confidence_max > 0.5
    assert 0.3 < best.volume_mm3 / (4 / 3 * np.pi * LESION_RADIUS_MM**3) < 3
