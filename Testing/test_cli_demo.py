"""The `lesiondetect demo` command, in subprocesses, on the shipped samples."""

from __future__ import annotations

import re

from cli_process import lesiondetect


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
