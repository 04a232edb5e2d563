"""`cli.common`'s option types, through every command's parser (issue 20, item 11): every option has a type and a
range, and bad usage is exit 2 with argparse's message."""

from __future__ import annotations

import pytest
from cli_usage import DETECT, EVALUATE, TRAIN, usage_error

from LesionDetectLib import cli

pytestmark = pytest.mark.usefixtures("in_a_scratch_folder")

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


def test_valid_detect_values_still_parse():
    parser = cli.build_parser()
    args = parser.parse_args([*DETECT, "--overlap", "0.5", "--device", "cuda:1", "--batch-size", "8"])
    assert (args.overlap, args.device, args.batch_size) == (0.5, "cuda:1", 8)


def test_valid_train_values_still_parse():
    parser = cli.build_parser()
    args = parser.parse_args([*TRAIN, "--folds", "5", "--fold", "4", "--spacing", "1,1,2", "--seed", "4294967295"])
    assert (args.folds, args.fold, args.spacing, args.seed) == (5, 4, (1.0, 1.0, 2.0), 4294967295)


def test_valid_evaluate_values_still_parse():
    parser = cli.build_parser()
    assert parser.parse_args([*EVALUATE, "--bootstrap", "0", "--threshold", "1"]).bootstrap == 0
