"""The `lesiondetect detect` command end to end, in subprocesses: outputs, exit codes, nothing partial left behind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from cli_process import lesiondetect
from conftest import make_volume, write_threshold_bundle

OUTPUTS = {"case.seg.nrrd", "case.mrk.json", "case.lesions.csv", "case.lesions.json"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    bundle = write_threshold_bundle(root / "bundle")
    image = root / "case.nii.gz"
    sitk.WriteImage(make_volume(background=-1000.0, lesion_value=100.0).to_sitk(), str(image))
    return root, bundle, image


def test_detect_writes_all_outputs_and_jsonl_progress(workspace, tmp_path):
    root, bundle, image = workspace
    done = lesiondetect("detect", image, "-o", tmp_path, "--model", bundle, "--progress", "jsonl",
                        "--save-probability", env_models=root / "none")
    assert done.returncode == 0, done.stderr
    assert {p.name for p in tmp_path.iterdir()} == OUTPUTS | {"case.probability.nrrd"}
    events = [json.loads(line) for line in done.stdout.splitlines()]
    stages = [event["stage"] for event in events]
    assert stages[0] == "read" and stages[-1] == "done" and "inference" in stages
    fractions = [event["fraction"] for event in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    lesions = json.loads((tmp_path / "case.lesions.json").read_text())["lesions"]
    assert len(lesions) == 1


def test_outline_threshold_option_is_used_and_recorded(workspace, tmp_path):
    root, bundle, image = workspace
    done = lesiondetect("detect", image, "-o", tmp_path, "--model", bundle, "--threshold", "0.6",
                        "--outline-threshold", "0.9", "--quiet", env_models=root / "none")
    assert done.returncode == 0, done.stderr
    settings = json.loads((tmp_path / "case.lesions.json").read_text())["settings"]
    assert (settings["threshold"], settings["outline_threshold"]) == (0.6, 0.6)  # never above the threshold


def test_bad_input_exit_code_and_nothing_written(workspace, tmp_path):
    root, bundle, _ = workspace
    flat = root / "flat.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.float32)), str(flat))
    out = tmp_path / "out"
    done = lesiondetect("detect", flat, "-o", out, "--model", bundle, "--progress", "jsonl")
    assert done.returncode == 3
    assert done.stderr.strip().startswith("lesiondetect: error:") and "constant" in done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["exit_code"] == 3
    assert not any(out.iterdir())


def test_corrupt_model_exit_code(workspace, tmp_path):
    _, _, image = workspace
    bad = tmp_path / "bad-bundle"
    bad.mkdir()
    (bad / "model.json").write_text("{}")
    (bad / "weights.pt").write_bytes(b"junk")
    done = lesiondetect("detect", image, "-o", tmp_path / "out", "--model", bad)
    assert done.returncode == 4 and "missing field" in done.stderr


def test_unwritable_output_exit_code(workspace, tmp_path):
    _, bundle, image = workspace
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    done = lesiondetect("detect", image, "-o", blocker / "sub", "--model", bundle)
    assert done.returncode == 5 and "Traceback" not in done.stderr


def test_batch_continues_past_a_broken_case_and_resumes(workspace, tmp_path):
    root, bundle, image = workspace
    broken = root / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    listing = tmp_path / "cases.txt"
    listing.write_text(f"{broken}\n{image}\n")
    done = lesiondetect("detect", listing, "-o", tmp_path / "out", "--model", bundle, "--quiet")
    assert done.returncode == 3 and "broken.nii.gz" in done.stderr
    assert (tmp_path / "out" / "case.seg.nrrd").exists()
    again = lesiondetect("detect", image, "-o", tmp_path / "out", "--model", bundle, "--resume", "--progress", "jsonl")
    assert again.returncode == 0 and '"0 written, 1 skipped' in again.stdout


def test_usage_error_exit_code():
    assert lesiondetect("detect").returncode == 2
