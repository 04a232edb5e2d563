"""Progress reporting (`progress.py`): the JSON lines programs read, the bars, and training reporting through them."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from training_cases import tiny_recipe, write_dataset

from LesionDetectLib.progress import (
    STEP,
    bar_reporter,
    jsonl_reporter,
    make_reporter,
    silent,
    step_bar_reporter,
)
from LesionDetectLib.training import train

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread

NETWORK_KWARGS = '{"spatial_dims": 3, "in_channels": 1, "out_channels": 1, "channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1}'
TINY_OPTIONS = (
    "--recipe", "cpu", "--spacing", "1.5", "--patch-size", "24", "--network-kwargs", NETWORK_KWARGS, "--epochs", "2",
    "--iterations-per-epoch", "3", "--batch-size", "2", "--samples-per-case", "2", "--val-interval", "1",
    "--warmup-epochs", "1", "--lr", "3e-3", "--sw-batch-size", "4", "--cache", "memory", "--num-workers", "0",
    "--device", "cpu",
)  # the command-line form of tiny_recipe()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("dataset"), count=4, validation=2)


def test_jsonl_reporter_writes_one_object_a_line_and_leaves_steps_out():
    stream = io.StringIO()
    report = jsonl_reporter(stream)
    report("train", 1 / 3, "epoch 1: loss 1.8582")
    report(STEP, 0.5, "epoch 2/2: loss 1.8, lr 3.00e-03")
    report("done", 1, "finished")
    assert stream.getvalue() == (
        '{"stage": "train", "fraction": 0.3333, "message": "epoch 1: loss 1.8582"}\n'
        '{"stage": "done", "fraction": 1.0, "message": "finished"}\n'
    )


def test_step_bar_shows_the_step_figures_and_writes_messages_on_their_own_lines():
    stream = io.StringIO()
    report = step_bar_reporter(stream)
    report("train", 0.0, "training 2 cases")
    for step in range(1, 5):
        report(STEP, step / 4, f"epoch {(step + 1) // 2}/2: loss {1 / step:.4f}, lr 1.00e-03")
        if step == 2:
            report("train", 0.5, "epoch 1: loss 0.5000")
    report("validate", 1.0, "epoch 2: loss 0.2500")
    report("done", 1.0, "not shown: the caller prints its summary")
    lines = stream.getvalue().replace("\r", "\n").splitlines()
    assert lines[0] == "training 2 cases"
    assert "epoch 1: loss 0.5000" in lines and lines[-1] == "epoch 2: loss 0.2500"
    assert any(re.match(r"epoch 1/2:  25%\|.*\| \[.*, loss 1.0000, lr 1.00e-03\]$", line) for line in lines)
    assert re.match(r"epoch 2/2: 100%\|.*, loss 0.2500, lr 1.00e-03\]$", lines[-2])
    assert "not shown" not in stream.getvalue()


def test_a_step_bar_is_not_drawn_before_the_first_step():
    stream = io.StringIO()
    report = step_bar_reporter(stream)
    report("train", 0.0, "nothing to train")
    report("done", 1.0, "")
    assert stream.getvalue() == "nothing to train\n"


def test_make_reporter_maps_the_progress_modes(capsys):
    assert make_reporter("none") is silent
    make_reporter("jsonl")("read", 0.05, "reading")
    assert capsys.readouterr().out == '{"stage": "read", "fraction": 0.05, "message": "reading"}\n'
    made = []
    assert make_reporter("bar", bar=lambda: made.append("bar") or silent) is silent and made == ["bar"]
    make_reporter("bar")("done", 1.0, "")  # detect's bar: the stage, then the percentage
    assert re.search(r"done +100%\|", capsys.readouterr().err)


def test_the_percentage_bar_describes_the_stage():
    stream = io.StringIO()
    report = bar_reporter(stream)
    report("inference", 0.5, "sliding window")
    report("done", 1.0, "")
    assert re.search(r"inference +\d+%\|", stream.getvalue()) and "sliding window" not in stream.getvalue()


def test_training_reports_each_step_and_epoch_to_a_progress_callback(dataset, tmp_path):
    events = []
    train(dataset, tmp_path / "model", tiny_recipe(), progress=lambda *event: events.append(event))
    steps = [event for event in events if event[0] == STEP]
    others = [event for event in events if event[0] != STEP]
    assert [fraction for _, fraction, _ in steps] == [step / 6 for step in range(1, 7)]
    assert all(re.fullmatch(r"epoch [12]/2: loss \d+\.\d{4}, lr \d\.\d\de-0\d", message) for _, _, message in steps)
    assert others[0] == ("train", 0.0, "training 2 cases, validating 2 (the dataset's validation list)")
    assert [(stage, fraction) for stage, fraction, _ in others[1:]] == [("validate", 0.5), ("validate", 1.0)]
    assert re.fullmatch(r"epoch 1: loss \d+\.\d{4}; validation Dice .* \(2 lesions, 2 cases\)", others[1][2])


def test_cli_training_prints_the_json_lines_of_the_detect_protocol(dataset, tmp_path, capsys):
    """One object a line with exactly stage, fraction and message (what the Slicer module parses), no step lines."""
    from LesionDetectLib.cli import main

    out = tmp_path / "model"
    assert main(["train", str(dataset), "-o", str(out), *TINY_OPTIONS, "--progress", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in lines]
    assert lines == [json.dumps(event) for event in events]
    assert all(list(event) == ["stage", "fraction", "message"] for event in events)
    assert [(event["stage"], event["fraction"]) for event in events] == [
        ("train", 0.0), ("validate", 0.5), ("validate", 1.0), ("done", 1.0)]
    assert events[0]["message"] == "training 2 cases, validating 2 (the dataset's validation list)"
    assert events[-1]["message"].startswith(f"model bundle written to {out} after 2 epochs; best epoch ")
