"""The `lesiondetect train` command: its options checked before anything runs and turned into the recipe, and
dataset problems reported in one line."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_usage import TRAIN, usage_error

from LesionDetectLib.training import Recipe
from LesionDetectLib.training.bundle import model_spec

pytestmark = pytest.mark.usefixtures("in_a_scratch_folder")


def test_fold_needs_folds_and_a_fold_in_range(capsys):
    assert "--folds" in usage_error([*TRAIN, "--fold", "1"], capsys)
    assert "--fold" in usage_error([*TRAIN, "--folds", "3", "--fold", "3"], capsys)
    assert "--fold" in usage_error([*TRAIN, "--folds", "3", "--fold", "-1"], capsys)


@pytest.mark.usefixtures("one_thread")
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


@pytest.mark.usefixtures("one_thread")
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
