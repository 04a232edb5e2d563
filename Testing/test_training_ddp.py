"""`lesiondetect train` under torchrun: two CPU processes with gloo write the same bundle format as one."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed
from training_cases import write_dataset

from LesionDetectLib.bundles import open_bundle

REPOSITORY = Path(__file__).resolve().parents[1]
LAUNCHER = """
import argparse, sys
from LesionDetectLib.cli import train
parser = argparse.ArgumentParser(prog="lesiondetect")
train.add_parser(parser.add_subparsers(dest="command"))
args = parser.parse_args(["train", *sys.argv[1:]])
sys.exit(args.run(args))
"""

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="this PyTorch build has no torch.distributed with gloo",
)


def train_target(folder: Path) -> list[str]:
    """``-m LesionDetectLib train`` once the sub-command is registered, else a launcher of the same parser."""
    from LesionDetectLib.cli import SUBCOMMANDS

    if "train" in SUBCOMMANDS:
        return ["-m", "LesionDetectLib", "train"]
    script = folder / "launch_train.py"
    script.write_text(LAUNCHER)
    return [str(script)]


def test_two_process_gloo_training_writes_a_bundle(tmp_path):
    data = write_dataset(tmp_path / "data", count=6, validation=2)
    out = tmp_path / "model"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *train_target(tmp_path),
        str(data), "-o", str(out), "--recipe", "cpu", "--device", "cpu", "--spacing", "1.5", "--patch-size", "24",
        "--network-kwargs", '{"channels": [8, 16, 32], "strides": [2, 2]}', "--epochs", "2",
        "--iterations-per-epoch", "2", "--batch-size", "1", "--val-interval", "1", "--warmup-epochs", "0",
        "--cache", "memory", "--num-workers", "0", "--progress", "none", "--name", "ddp-test",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPOSITORY), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run(command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("model bundle written to") == 1  # rank 0 alone reports

    model = open_bundle(out)
    spec = model.spec
    assert spec.name == "ddp-test" and spec.network["kwargs"]["channels"] == [8, 16, 32]
    assert spec.provenance["training"]["hardware"]["processes"] == 2
    assert spec.provenance["training"]["epochs"] == 2 and spec.provenance["training"]["iterations"] == 4
    validation = spec.metrics["validation"]
    assert validation["cases"] == 2 and validation["lesions"] == 2  # gathered from both ranks
    assert set(json.loads((out / "model.json").read_text())) == set(spec.to_dict())
    assert [row["epoch"] for row in csv.DictReader((out / "training_log.csv").open())] == ["1", "2"]
    assert {"last.pt", "best.pt"} <= {path.name for path in (out / "checkpoints").iterdir()}
    model.network("cpu")  # the weights load into the named network
