"""Property test over the command line: every option of ``detect``, ``evaluate``, ``train`` and ``models``, with valid,
boundary and hostile values (NaN, Infinity, huge and negative numbers, empty and odd strings), sometimes with a
SIGTERM or Ctrl-C at a random moment.

Each command runs as the real process entry point in a child forked from `fork_runner` (the library imported once),
under a time limit. The invariant is the README's: a documented exit code, no traceback, one error line on stderr
(argparse's usage message for bad usage, exit 2), no hang, a peak memory well below what a runaway allocation
takes, exit 130 when a signal came, and an output folder that is complete or empty (never a temporary file).

The options are read from the parser itself, so a new option is fuzzed as soon as it exists. Seeded (hypothesis'
derandomize); ``LESIONDETECT_FUZZ_SCALE=20`` runs 20 times the examples (with ``--hypothesis-seed=N`` for others).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import fuzz_settings, make_volume, write_threshold_bundle
from hypothesis import given
from hypothesis import strategies as st

from LesionDetectLib.cli import build_parser

REPOSITORY = Path(__file__).resolve().parents[1]
OUTCOMES: Counter = Counter()
DOCUMENTED_EXIT_CODES = {0, 1, 2, 3, 4, 5, 6, 7, 130, 141}
MEMORY_MARGIN = 2 * 2**30  # a child may use this much more than the runner it was forked from
DETECT_OUTPUTS = (".seg.nrrd", ".mrk.json", ".lesions.csv", ".lesions.json")
EVALUATE_OUTPUTS = ("summary.json", "per_case.csv", "per_lesion.csv", "froc.csv")
HOSTILE = ["", " ", "nan", "-nan", "inf", "-inf", "Infinity", "-1", "0", "1", "2", "0.5", "0.95", "1e400", "-1e400",
           "1e-400", "99999999999999999999", "2147483648", "4294967296", "1_000", "0x10", "abc", "-", "é", "x" * 300,
           "../escape", "/dev/zero", "cuda", "cuda:7", "cpu", "ct:-inf,0", "mr:0,100", "{}", '{"a": NaN}', "[1]",
           "KEY=VALUE", "=", "1,1", "1,1,1,1", "16x16x16"]
# values that make a run do real work, per option (the option's choices are added; other options get HOSTILE only)
USEFUL = {
    "threshold": ["0.3", "0.5", "0.9"], "outline_threshold": ["0.2", "0.5"], "min_size": ["0", "5", "1e6"],
    "max_lesions": ["1", "3"], "device": ["cpu", "auto"], "batch_size": ["1", "2", "4"], "overlap": ["0", "0.5", "0.9"],
    "series_uid": ["1.2.3"], "merge_mm": ["0", "6"], "min_volume_mm3": ["0", "50"], "hit_mm": ["0", "3", "1e4"],
    "bootstrap": ["0", "10"], "seed": ["0", "7"], "filter": ["lesion_type=glioma"],
    "lr": ["0.001", "10"], "weight_decay": ["0", "0.1"], "warmup_epochs": ["0", "1"], "positive_fraction": ["0", "1"],
    "rotate_degrees": ["0", "180"], "scale_range": ["0", "0.5"], "copy_paste": ["0", "1"], "val_fraction": ["0", "0.5"],
    "folds": ["2", "3"], "fold": ["0", "1"], "name": ["fuzz-model"], "description": ["a model"],
    "intensity": ["ct:-100,200", "mr:1,99", "ct"], "min_lesion_mm3": ["0", "10"], "num_workers": ["0"],
}
GIVEN = {"output", "model_dir", "out", "pred", "ref", "model"}  # set by `commands` (the model: only sometimes)
TRAIN_CHEAP = ["--recipe", "cpu", "--epochs", "1", "--iterations-per-epoch", "1", "--batch-size", "1",
               "--samples-per-case", "1", "--patch-size", "16", "--spacing", "3", "--sw-batch-size", "1",
               "--val-interval", "1", "--num-workers", "0", "--cache", "none", "--device", "cpu",
               "--network", "UNet", "--network-kwargs", '{"channels": [4, 8], "strides": [2]}']


class ForkRunner:
    """The `fork_runner` process: ``run`` sends one command and returns (exit status, stdout, stderr, answer)."""

    def __init__(self, root: Path):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")]),
               "OMP_NUM_THREADS": "1"}
        self.root = root
        self.process = subprocess.Popen([sys.executable, str(REPOSITORY / "Testing" / "fork_runner.py")],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        ready = json.loads(self.process.stdout.readline())
        assert ready["ready"]
        self.base_bytes = _resident_bytes(ready["pid"])
        self.count = 0

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], timeout_s: float = 60.0,
            signal_after_s: float | None = None, signum: int = signal.SIGTERM):
        self.count += 1
        stdout, stderr = self.root / f"{self.count}.out", self.root / f"{self.count}.err"
        request = {"argv": argv, "cwd": str(cwd), "env": env, "timeout_s": timeout_s, "stdout": str(stdout),
                   "stderr": str(stderr), "signal_after_s": signal_after_s, "signal": int(signum)}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        return answer, stdout.read_text(errors="replace"), stderr.read_text(errors="replace")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def _resident_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    forks = ForkRunner(tmp_path_factory.mktemp("runs"))
    yield forks
    forks.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs every command can work on: a small CT, a fast model, predictions with references, a tiny dataset."""
    from LesionDetectLib.bundles import open_bundle
    from LesionDetectLib.detect import detect
    from LesionDetectLib.io import read_volume

    root = tmp_path_factory.mktemp("world")
    bundle = write_threshold_bundle(root / "bundle", spacing=[2.0, 2.0, 2.0], patch_size=[16, 16, 16])
    box = (slice(4, 9), slice(5, 11), slice(5, 11))
    volume = make_volume(shape_kji=(12, 16, 16), spacing=(1.0, 1.0, 1.5), background=-1000.0, lesions=(box,))
    image = root / "case.nii.gz"
    sitk.WriteImage(volume.to_sitk(), str(image))
    detect(read_volume(image), open_bundle(bundle), device="cpu").write(root / "pred")
    (root / "ref").mkdir()
    label = volume.with_array((volume.array > 50).astype(np.uint8))
    sitk.WriteImage(label.to_sitk(), str(root / "ref" / "case.nii.gz"))
    items = []
    (root / "data").mkdir()
    for number in range(2):
        case = make_volume(shape_kji=(12, 16, 16), spacing=(1.0, 1.0, 1.5), background=-1000.0, lesions=(box,),
                           seed=number)
        sitk.WriteImage(case.to_sitk(), str(root / "data" / f"c{number}.nii.gz"))
        sitk.WriteImage(case.with_array((case.array > 50).astype(np.uint8)).to_sitk(),
                        str(root / "data" / f"c{number}_label.nii.gz"))
        items.append({"image": f"c{number}.nii.gz", "label": f"c{number}_label.nii.gz", "case": f"c{number}"})
    (root / "data" / "dataset.json").write_text(json.dumps({"name": "fuzz", "modality": {"0": "CT"},
                                                            "training": items}))
    return {"root": root, "bundle": bundle, "image": image, "dataset": root / "data" / "dataset.json"}


def options_of(command: list[str]) -> list:
    """The optional arguments of a (sub-)command, read from the parser."""
    parser = build_parser()
    for name in command:
        parser = parser.commands[name] if hasattr(parser, "commands") else _subcommand(parser, name)
    return [action for action in parser._actions if action.option_strings and action.dest != "help"]


def _subcommand(parser, name):
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices[name]


@st.composite
def option_values(draw, command: list[str], hostile: bool) -> list[str]:
    """Some of ``command``'s options with values from their choices and useful values; with ``hostile``, one of
    them gets a value from HOSTILE instead."""
    chosen = [action for action in options_of(command) if action.dest not in GIVEN and draw(st.integers(0, 4)) == 0]
    bad = draw(st.sampled_from(chosen)) if hostile and chosen else None
    argv: list[str] = []
    for action in chosen:
        flag = draw(st.sampled_from(action.option_strings))
        if action.nargs == 0:
            argv.append(flag)
            continue
        pool = HOSTILE if action is bad else list(action.choices or []) + USEFUL.get(action.dest, []) or HOSTILE
        values = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2 if action.nargs in ("+", "*") else 1))
        argv += [flag, *values]
    return argv


@st.composite
def commands(draw, world, kind: str) -> tuple[str, list[str], Path | None]:
    """(kind, argv, output folder) of one command line of ``kind``; half of them hold one hostile option value."""
    out = Path("out")
    hostile = draw(st.booleans())
    if kind == "detect":
        inputs = draw(st.sampled_from([[str(world["image"])], [str(world["image"])], [""], ["missing.nii.gz"],
                                       [str(world["root"] / "pred")]]))
        model = ["--model", str(world["bundle"])] if draw(st.integers(0, 4)) else []
        argv = ["detect", *inputs, "-o", str(out), *model, "--force-modality", *draw(option_values(["detect"], hostile))]
    elif kind == "evaluate":
        argv = ["evaluate", "--pred", str(world["root"] / "pred"), "--ref", str(world["root"] / "ref"), "-o", str(out),
                "--no-plot", *draw(option_values(["evaluate"], hostile))]
    elif kind == "models list":
        argv = ["models", "list", *draw(option_values(["models", "list"], hostile))]
        out = None
    elif kind == "models show":
        name = draw(st.sampled_from(["test-threshold-ct", "ct-tumours", str(world["bundle"]), "", "nope", "../x"]))
        argv, out = ["models", "show", name], None
    elif kind == "models import":
        path = draw(st.sampled_from([str(world["bundle"]), str(world["bundle"]), str(world["image"]), "", "nowhere"]))
        argv, out = ["models", "import", path], Path("models")
    else:
        argv = ["train", str(world["dataset"]), "-o", str(out), *draw(option_values(["train"], hostile)), *TRAIN_CHEAP,
                "--val-fraction", "0.5"]
    return kind, argv, out


def assert_complete_or_empty(kind: str, folder: Path) -> None:
    if not folder.exists():
        return
    hidden = [p for p in folder.rglob(".*")]
    assert hidden == [], f"temporary files left: {hidden}"
    names = sorted(p.name for p in folder.iterdir())
    if kind == "detect":
        stems = {name.split(".")[0] for name in names}
        for stem in stems:
            assert {f"{stem}{suffix}" for suffix in DETECT_OUTPUTS} <= set(names), names
    elif kind == "evaluate" and names:
        assert set(EVALUATE_OUTPUTS) <= set(names), names
    elif kind == "models import":
        for bundle in folder.iterdir():
            assert sorted(p.name for p in bundle.iterdir()) == ["model.json", "weights.pt"], bundle


PROGRESS_LINE = re.compile(r"\d+%\|")


def assert_documented_outcome(answer: dict, stdout: str, stderr: str, base_bytes: int, chatty: bool = False) -> None:
    """The invariant; ``chatty``: the command also reports progress in lines of text on stderr (train)."""
    assert not answer["timed_out"], f"no answer within its time limit\n{stderr[-2000:]}"
    status = answer["status"]
    assert "Traceback" not in stderr and status != 99, stderr[-3000:]
    assert status in DOCUMENTED_EXIT_CODES, (status, stderr[-2000:])
    assert answer["peak_bytes"] < base_bytes + MEMORY_MARGIN, answer
    lines = [line for line in stderr.replace("\r", "\n").splitlines()
             if line.strip() and not PROGRESS_LINE.search(line) and not line.startswith("lesiondetect: warning:")]
    if answer["signalled"]:  # also after another error was reported: then that stays the one line
        assert status == 130, (status, stderr[-2000:])
    if status == 2 or status == 130 and stderr.startswith("usage:"):  # argparse's usage and error line
        usage = lines[0].startswith("usage: ") and all(line.startswith(" ") for line in lines[1:-1])
        assert usage and re.match(r"lesiondetect( [\w-]+)*: error: ", lines[-1]), stderr
    elif status not in (0, 141):
        errors = [line for line in lines if line.startswith(("lesiondetect: error:", "lesiondetect: failed:"))]
        assert len(errors) == 1 and (chatty or len(lines) == 1), stderr[-2000:]


KINDS = ("detect", "train", "evaluate", "models import", "models list", "models show")  # every kind runs


@pytest.mark.parametrize("kind", KINDS)
@fuzz_settings(14, deadline_s=None)
@given(data=st.data())
def test_every_option_gives_a_documented_outcome(runner, world, tmp_path_factory, data, kind):
    kind, argv, out = data.draw(commands(world, kind), label="command")
    interrupt = data.draw(st.sampled_from([None] * 6 + [signal.SIGTERM, signal.SIGINT]), label="signal")
    delay = data.draw(st.floats(0.0, 1.5), label="signal after s") if interrupt else None
    cwd = tmp_path_factory.mktemp("run")
    env = {"LESIONDETECT_MODELS": str(cwd / "models"), "OMP_NUM_THREADS": "1"}
    answer, stdout, stderr = runner.run(argv, cwd, env, timeout_s=120 if kind == "train" else 60,
                                        signal_after_s=delay, signum=interrupt or signal.SIGTERM)
    OUTCOMES[(kind, answer["status"])] += 1
    assert_documented_outcome(answer, stdout, stderr, runner.base_bytes, chatty=kind == "train")
    if out is not None:
        assert_complete_or_empty(kind, cwd / out)


def test_outcome_counts():
    """Runs last in this file: what the commands did (``pytest -s`` shows it), and that each kind ran and worked."""
    print("\n" + ", ".join(f"{kind} → {status}: {count}" for (kind, status), count in sorted(OUTCOMES.items(), key=str)))
    if OUTCOMES:
        kinds = {kind for kind, _ in OUTCOMES}
        assert {"detect", "evaluate", "train", "models list", "models show", "models import"} <= kinds
        assert all(OUTCOMES[(kind, 0)] > 0 for kind in ("detect", "evaluate", "models list", "models import")), OUTCOMES
