"""Command-line usage (issue 20, items 11 and 12): every option has a type and a range, bad usage is exit 2 with
argparse's message, and output cut off by its reader (``| head``) ends the command quietly, as other tools do."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import write_threshold_bundle

from LesionDetectLib import cli

TRAIN = ["train", "dataset.json", "-o", "model-dir"]
EVALUATE = ["evaluate", "--pred", "pred", "--ref", "ref"]
DETECT = ["detect", "scan.nii.gz", "-o", "out"]


@pytest.fixture(autouse=True)
def in_a_scratch_folder(tmp_path, monkeypatch):
    """The commands name relative paths: should one run after all, it writes here, not into the checkout."""
    monkeypatch.chdir(tmp_path)


def usage_error(argv: list[str], capsys) -> str:
    """argparse's message for ``argv``, which must be refused as bad usage (exit 2) before anything runs."""
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    err = capsys.readouterr().err
    assert caught.value.code == 2, err
    assert err.startswith("usage: lesiondetect") and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("lesiondetect ") and ": error: " in lines[-1], err
    return lines[-1]


@pytest.mark.parametrize("value", ["3", "inf", "-1", "1_000", "1", "nan", "0.95", "abc", ""])
def test_overlap_must_be_a_fraction(value, capsys):
    assert "--overlap" in usage_error([*DETECT, "--overlap", value], capsys)


@pytest.mark.parametrize("argv", [
    [*TRAIN, "--batch-size", "99999999999999999999"],
    [*TRAIN, "--iterations-per-epoch", "99999999999999999999"],
    [*TRAIN, "--epochs", "10000000000"],
    [*EVALUATE, "--bootstrap", "2147483648"],
    [*EVALUATE, "--seed", "-1"],
    [*TRAIN, "--seed", "4294967296"],
    [*DETECT, "--batch-size", "100000"],
    [*DETECT, "--max-lesions", "10000000000"],
    [*DETECT, "--min-size", "1e300"],
])
def test_counts_have_a_range(argv, capsys):
    usage_error(argv, capsys)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:", "CPU", "mps", "cuda:1:2", ""])
def test_unknown_device_is_bad_usage(device, capsys):
    for command in (DETECT, TRAIN):
        assert "--device" in usage_error([*command, "--device", device], capsys)


def test_fold_needs_folds_and_a_fold_in_range(capsys):
    assert "--folds" in usage_error([*TRAIN, "--fold", "1"], capsys)
    assert "--fold" in usage_error([*TRAIN, "--folds", "3", "--fold", "3"], capsys)
    assert "--fold" in usage_error([*TRAIN, "--folds", "3", "--fold", "-1"], capsys)


@pytest.mark.parametrize("argv", [
    [*TRAIN, "--overlap", "1.0"],
    [*TRAIN, "--lr", "nan"],
    [*TRAIN, "--lr", "-1"],
    [*TRAIN, "--weight-decay", "inf"],
    [*TRAIN, "--warmup-epochs", "-2"],
    [*TRAIN, "--rotate-degrees", "720"],
    [*TRAIN, "--scale-range", "1"],
    [*TRAIN, "--num-workers", "-1"],
    [*TRAIN, "--spacing", "inf"],
    [*TRAIN, "--spacing", "nan,1,1"],
    [*TRAIN, "--patch-size", "100000"],
    [*TRAIN, "--patch-size", "60"],  # not a multiple of the UNet's 16
    [*TRAIN, "--patch-size", "256", "--sw-batch-size", "8"],  # 2^27 voxels per sliding-window batch
    [*TRAIN, "--intensity", "ct:-inf,300"],
    [*TRAIN, "--intensity", "mr:-5,200"],
    [*TRAIN, "--val-fraction", "nan"],
    [*TRAIN, "--copy-paste", "abc"],
    [*TRAIN, "--name", "../escape"],
    [*TRAIN, "--network", "os.system"],
    [*TRAIN, "--network-kwargs", '{"dropout": NaN}'],
    [*TRAIN, "--network-kwargs", '{"in_channels": 3}'],
    [*TRAIN, "--min-lesion-mm3", "inf"],
    [*TRAIN, "--folds", "1"],
    [*EVALUATE, "--threshold", "2"],
    [*EVALUATE, "--hit-mm", "inf"],
])
def test_training_and_evaluation_values_are_checked_before_anything_runs(argv, capsys):
    usage_error(argv, capsys)


@pytest.mark.parametrize("argv", [
    ["detect", "scan.nii.gz", "-o", ""],
    ["detect", "", "-o", "out"],
    ["demo", "-o", ""],
    ["evaluate", "--pred", "", "--ref", "ref"],
    [*EVALUATE, "-o", ""],
    ["train", "", "-o", "model-dir"],
    ["train", "dataset.json", "-o", ""],
    ["models", "import", ""],
    ["models", "show", ""],
    [*DETECT, "--model", ""],
    [*DETECT, "--series-uid", ""],
])
def test_empty_paths_are_bad_usage(argv, capsys):
    """``-o ""`` used to write into the current folder."""
    usage_error(argv, capsys)


def test_valid_values_still_parse():
    parser = cli.build_parser()
    args = parser.parse_args([*DETECT, "--overlap", "0.5", "--device", "cuda:1", "--batch-size", "8"])
    assert (args.overlap, args.device, args.batch_size) == (0.5, "cuda:1", 8)
    args = parser.parse_args([*TRAIN, "--folds", "5", "--fold", "4", "--spacing", "1,1,2", "--seed", "4294967295"])
    assert (args.folds, args.fold, args.spacing, args.seed) == (5, 4, (1.0, 1.0, 2.0), 4294967295)
    assert parser.parse_args([*EVALUATE, "--bootstrap", "0", "--threshold", "1"]).bootstrap == 0


# ------------------------------------------------------------------------------------------ item 12


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
