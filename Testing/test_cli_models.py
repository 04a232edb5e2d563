"""The `lesiondetect models` command, in subprocesses: import, list and show."""

from __future__ import annotations

import json

from cli_process import lesiondetect


def test_models_list_import_show(threshold_bundle, tmp_path):
    bundle = threshold_bundle
    user = tmp_path / "models"
    assert lesiondetect("models", "import", bundle, env_models=user).returncode == 0
    listing = lesiondetect("models", "list", "--json", env_models=user)
    names = {entry["name"]: entry for entry in json.loads(listing.stdout)}
    assert names["test-threshold-ct"]["source"] == "user"
    shown = lesiondetect("models", "show", "test-threshold-ct", env_models=user)
    assert json.loads(shown.stdout)["modality"] == "CT"


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
