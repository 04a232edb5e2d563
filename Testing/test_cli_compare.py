"""`lesiondetect compare` end to end, in subprocesses: scans detected, results folders reused, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from change_phantom import CURRENT_LESIONS, PRIOR_LESIONS, Sphere, rigid, rotation, scan
from cli_process import lesiondetect
from conftest import oblique_direction, write_threshold_bundle

from LesionDetectLib import detect, load_model, read_volume

MOTION = rigid((2.0, -1.0, 1.0), 5.0, (-4.0, 6.0, 3.0))
COUNTS = "1 new, 1 enlarging, 2 stable, 1 shrinking, 1 resolved, 0 outside"
FILES = {"change.csv", "change.json", "change.png", "prior_to_current.tfm"} | {
    f"{side}.{kind}" for side in ("prior", "current") for kind in ("seg.nrrd", "mrk.json", "lesions.csv", "lesions.json")
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """CT scans of one head a time apart (with the known changes), another head, and the installed threshold model."""
    root = tmp_path_factory.mktemp("compare-cli")
    models = root / "models"
    write_threshold_bundle(models / "test-threshold-ct")
    prior, prior_mask = scan(PRIOR_LESIONS, np.eye(4), (1.8, 2.2, 2.0),
                             rotation((0.0, 1.0, 0.0), 20.0) @ np.diag([1.0, -1.0, 1.0]), modality="CT")
    current, _ = scan(CURRENT_LESIONS, MOTION, (2.0, 1.7, 2.6), oblique_direction(), modality="CT")
    other, other_mask = scan((Sphere((3.0, 8.0, -5.0), 4.0),), MOTION, (2.0, 1.7, 2.6), oblique_direction(),
                             modality="CT", patient=1)
    paths = {"models": models, "prior": root / "prior.nii.gz", "current": root / "current.nrrd",
             "other": root / "other.nrrd", "prior_mask": root / "prior_mask.nrrd", "other_mask": root / "other_mask.nrrd"}
    for key, volume in (("prior", prior), ("current", current), ("other", other), ("prior_mask", prior_mask),
                        ("other_mask", other_mask)):
        sitk.WriteImage(volume.to_sitk(), str(paths[key]))
    return paths


def test_compare_two_scans_detects_both_and_writes_every_output(workspace, tmp_path):
    done = lesiondetect("compare", workspace["prior"], workspace["current"], "-o", tmp_path, "--model",
                        "test-threshold-ct", "--progress", "none", env_models=workspace["models"])
    assert done.returncode == 0, done.stderr
    assert COUNTS in done.stdout
    assert {path.name for path in tmp_path.iterdir()} == FILES
    document = json.loads((tmp_path / "change.json").read_text())
    assert document["prior"]["lesions_from"] == document["current"]["lesions_from"] == "detected"
    assert document["current"]["probability_known"] and document["current"]["settings"]["model"] == "test-threshold-ct"
    assert document["registration"]["quality"]["rotation_deg"] == pytest.approx(5.0, abs=1.0)


def test_results_folder_of_the_prior_sets_the_model_for_the_current_scan(workspace, tmp_path):
    prior = read_volume(workspace["prior"])
    detect(prior, load_model(workspace["models"] / "test-threshold-ct"), threshold=0.6).write(tmp_path / "prior-results")
    done = lesiondetect("compare", tmp_path / "prior-results", workspace["current"], "--prior-scan", workspace["prior"],
                        "-o", tmp_path / "out", "--progress", "jsonl", env_models=workspace["models"])
    assert done.returncode == 0, done.stderr
    stages = [json.loads(line)["stage"] for line in done.stdout.splitlines()]
    assert stages[-1] == "done" and "register" in stages and "inference" in stages
    assert COUNTS in done.stderr  # with --progress jsonl the report goes to stderr
    document = json.loads((tmp_path / "out" / "change.json").read_text())
    assert document["prior"]["lesions_from"] == "results"
    assert document["current"]["settings"]["model"] == "test-threshold-ct"
    assert document["current"]["settings"]["threshold"] == 0.6  # the prior's threshold, not the model's 0.5


def test_another_patient_is_refused_and_nothing_is_written(workspace, tmp_path):
    out = tmp_path / "out"
    done = lesiondetect("compare", workspace["prior"], workspace["other"], "--prior-lesions", workspace["prior_mask"],
                        "--current-lesions", workspace["other_mask"], "-o", out, "--quiet",
                        env_models=workspace["models"])
    assert done.returncode == 8, done.stderr
    assert "do not align" in done.stderr and "another patient" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())
