"""The `lesiondetect` command end to end, in subprocesses: outputs, exit codes, nothing partial left behind."""

from __future__ import annotations

import json
import re

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


def test_models_list_import_show(workspace, tmp_path):
    _, bundle, _ = workspace
    user = tmp_path / "models"
    assert lesiondetect("models", "import", bundle, env_models=user).returncode == 0
    listing = lesiondetect("models", "list", "--json", env_models=user)
    names = {entry["name"]: entry for entry in json.loads(listing.stdout)}
    assert names["test-threshold-ct"]["source"] == "user"
    shown = lesiondetect("models", "show", "test-threshold-ct", env_models=user)
    assert json.loads(shown.stdout)["modality"] == "CT"


def test_demo_runs_on_the_shipped_sample(tmp_path):
    """README: `lesiondetect demo` runs ct-tumours on the sarcoma sample (one of its training cases: it says so)."""
    done = lesiondetect("demo", "-o", tmp_path, "--progress", "none", env_models=tmp_path / "none")
    assert done.returncode == 0, done.stderr
    assert "Vallières" in done.stdout and "model: ct-tumours" in done.stdout
    assert "this case (STS_019) was one of the ct-tumours model's training cases" in done.stdout
    assert "against the reference mask (ct-tumour rule): 1 of 1 reference lesions found" in done.stdout
    assert (tmp_path / "ct_sarcoma.seg.nrrd").exists()
    assert (tmp_path / "ct_sarcoma.overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def agreement_counts(stdout: str) -> tuple[int, int, int]:
    """(found, reference lesions, detections outside them) from the demo's agreement line."""
    found = re.search(r"(\d+) of (\d+) reference lesions found, (\d+) detection\(s\) outside them", stdout)
    assert found, stdout
    return tuple(int(number) for number in found.groups())


def test_ms_demo_runs_the_flair_t1_model_with_the_samples_t1_on_a_held_out_scan(tmp_path):
    """README: `lesiondetect demo --ms` runs ms-flair-t1-lesions on the FLAIR and T1 of patient 07, held out of its
    training: 4 of 24 found, 3 regions outside them (test_shipped_models has the same numbers)."""
    done = lesiondetect("demo", "--ms", "-o", tmp_path, "--progress", "none", env_models=tmp_path / "none")
    assert done.returncode == 0, done.stderr
    assert "Lesjak" in done.stdout and "model: ms-flair-t1-lesions (threshold 0.95, outline 0.5)" in done.stdout
    assert "this case (patient07) was held out of the ms-flair-t1-lesions model's training" in done.stdout
    assert "against the reference mask (ms rule):" in done.stdout
    found, lesions, outside = agreement_counts(done.stdout)
    assert lesions == 24 and found >= 4 and outside <= 3
    assert (tmp_path / "ms_flair.overview.png").exists()


def test_ms_demo_with_the_flair_only_model_says_its_sample_was_a_training_case(tmp_path):
    done = lesiondetect("demo", "--ms", "--model", "ms-flair-lesions", "-o", tmp_path, "--progress", "none",
                        env_models=tmp_path / "none")
    assert done.returncode == 0, done.stderr
    assert "Lesjak" in done.stdout and "model: ms-flair-lesions" in done.stdout
    assert "this case (patient07) was one of the ms-flair-lesions model's training cases" in done.stdout
    assert "against the reference mask (ms rule):" in done.stdout and "of 24 reference lesions found" in done.stdout


def test_models_list_tells_the_ms_models_apart_and_keeps_the_glioma_model_the_mr_default(tmp_path):
    done = lesiondetect("models", "list", env_models=tmp_path / "none")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert "default MR" in lines["brain-mri-lesions"] and "default" not in lines["ms-flair-t1-lesions"]
    assert "FLAIR and T1" in lines["ms-flair-t1-lesions"] and "one skull-stripped FLAIR" in lines["ms-flair-lesions"]
    listing = lesiondetect("models", "list", "--json", env_models=tmp_path / "none")
    listed = {entry["name"]: entry for entry in json.loads(listing.stdout)}
    assert listed["ms-flair-t1-lesions"]["input_channels"] == ["FLAIR", "T1"]
    assert listed["ms-flair-lesions"]["input_channels"] == ["FLAIR"]


def test_usage_error_exit_code():
    assert lesiondetect("detect").returncode == 2
