"""`training.train`: short real training runs: the bundle they write, what it ships, resuming.

The synthetic cases are written as NIfTI with an oblique direction, anisotropic spacing and a non-zero
origin: an ellipsoid "body" of noisy tissue on a zero background holding one bright sphere (the lesion).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from training_cases import LESION_RADIUS_MM, SPACING, synthetic_case, tiny_recipe, write_dataset, write_image

from LesionDetectLib import detect, read_volume
from LesionDetectLib.bundles import import_model, open_bundle
from LesionDetectLib.errors import LesionDetectError
from LesionDetectLib.lesions import Lesion
from LesionDetectLib.training import load_dataset, train

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread

@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> Path:
    """A 2-epoch training run (validating every epoch) on the synthetic dataset."""
    out = tmp_path_factory.mktemp("run") / "model"
    torch.set_num_threads(1)
    train(dataset, out, tiny_recipe(), progress="none")
    return out


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
