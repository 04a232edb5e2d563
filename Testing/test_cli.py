"""`lesiondetect` itself (`cli/__init__.py`), in subprocesses (issue 20, item 12): output cut off by its reader
(``| head``) ends the command quietly, as other tools do."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import write_threshold_bundle


def run_with_closed_stdout(*args, models=None) -> subprocess.CompletedProcess:
    """Run the command with its stdout a pipe whose reader has gone (as after ``| head`` read enough)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if models is not None:
        env["LESIONDETECT_MODELS"] = str(models)
    process = subprocess.Popen([sys.executable, "-m", "LesionDetectLib", *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    process.stdout.close()
    try:
        stderr = process.stderr.read()
        process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, "", stderr)


PIPE_CLOSED = 141  # 128 + SIGPIPE: what a shell reports for `cat big | head`


@pytest.mark.parametrize("args", [("models", "show", "brain-mri-lesions"), ("models", "list", "--json"),
                                  ("--help",)])
def test_output_cut_off_by_its_reader_ends_quietly(args, tmp_path):
    done = run_with_closed_stdout(*args, models=tmp_path)
    # argparse itself ignores a failed write of the help text, so --help may also end with 0
    assert done.returncode in ((PIPE_CLOSED, 0) if args == ("--help",) else (PIPE_CLOSED,)), done.stderr
    assert done.stderr == ""


def test_detect_whose_progress_pipe_closes_stops_and_leaves_no_partial_output(tmp_path):
    import SimpleITK as sitk
    from conftest import make_volume

    bundle = write_threshold_bundle(tmp_path / "bundle")
    image = tmp_path / "case.nii.gz"
    sitk.WriteImage(make_volume(background=-1000.0, lesion_value=100.0).to_sitk(), str(image))
    out = tmp_path / "out"
    done = run_with_closed_stdout("detect", image, "-o", out, "--model", bundle, "--progress", "jsonl",
                                  models=tmp_path / "none")
    assert done.returncode == PIPE_CLOSED and done.stderr == "", done.stderr
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
