"""`lesiondetect detect` under torchrun: two CPU ranks share the cases (``inputs.shard`` by RANK/WORLD_SIZE),
every case is written exactly once, by one rank, and ``--resume`` skips finished cases on every rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk
import torch.distributed
from conftest import make_volume, write_threshold_bundle

REPOSITORY = Path(__file__).resolve().parents[1]
NAMES = ("a", "b", "c")
OUTPUT_SUFFIXES = (".seg.nrrd", ".mrk.json", ".lesions.csv", ".lesions.json")

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="this PyTorch build has no torch.distributed (torchrun needs it)"
)


def write_cases(folder: Path) -> list[Path]:
    """Three small CT-like volumes (air background, so they read as CT) with one bright lesion each."""
    folder.mkdir(parents=True)
    paths = []
    for seed, name in enumerate(NAMES):
        path = folder / f"{name}.nii.gz"
        sitk.WriteImage(make_volume(background=-1000.0, seed=seed, name=name).to_sitk(), str(path))
        paths.append(path)
    return paths


def torchrun_detect(cases: list[Path], out: Path, bundle: Path, logs: Path, *options: str):
    """``python -m torch.distributed.run --nproc_per_node=2 -m LesionDetectLib detect …``, one log folder per rank."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "--log-dir", str(logs), "--redirects", "3", "-m", "LesionDetectLib", "detect",
        *map(str, cases), "-o", str(out), "--model", str(bundle), "--device", "cpu", "--progress", "jsonl", *options,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPOSITORY), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run(command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=300)


def rank_events(logs: Path) -> dict[int, list[dict]]:
    """The ``--progress jsonl`` events each rank printed (torchrun writes ``<run>/attempt_0/<rank>/stdout.log``)."""
    events: dict[int, list[dict]] = {}
    for log in logs.glob("*/attempt_*/*/stdout.log"):
        lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
        events[int(log.parent.name)] = [json.loads(line) for line in lines]
    return events


def cases_read(events: list[dict]) -> list[str]:
    return [Path(event["message"].removeprefix("reading ")).name for event in events if event["stage"] == "read"]


def done_message(events: list[dict]) -> str:
    return next(event["message"] for event in events if event["stage"] == "done")


def test_two_ranks_write_each_case_exactly_once(tmp_path):
    cases = write_cases(tmp_path / "cases")
    bundle = write_threshold_bundle(tmp_path / "bundle")
    out = tmp_path / "out"
    done = torchrun_detect(cases, out, bundle, tmp_path / "logs")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    events = rank_events(tmp_path / "logs")
    assert sorted(events) == [0, 1]
    read = {rank: cases_read(printed) for rank, printed in events.items()}
    assert read == {0: ["a.nii.gz", "c.nii.gz"], 1: ["b.nii.gz"]}  # round robin, each case on one rank only
    assert done_message(events[0]).startswith("2 written") and done_message(events[1]).startswith("1 written")

    expected = {f"{name}{suffix}" for name in NAMES for suffix in OUTPUT_SUFFIXES}
    assert {path.name for path in out.iterdir()} == expected  # complete, and no staging files left behind
    for name in NAMES:
        table = json.loads((out / f"{name}.lesions.json").read_text())
        assert len(table["lesions"]) == 1


def test_two_ranks_resume_only_the_missing_case(tmp_path):
    cases = write_cases(tmp_path / "cases")
    bundle = write_threshold_bundle(tmp_path / "bundle")
    out = tmp_path / "out"
    assert torchrun_detect(cases, out, bundle, tmp_path / "logs-1").returncode == 0
    for suffix in OUTPUT_SUFFIXES:
        (out / f"b{suffix}").unlink()
    finished = {path.name: path.stat().st_mtime_ns for path in out.iterdir()}

    done = torchrun_detect(cases, out, bundle, tmp_path / "logs-2", "--resume")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    events = rank_events(tmp_path / "logs-2")
    assert cases_read(events[0]) == [] and cases_read(events[1]) == ["b.nii.gz"]
    assert done_message(events[0]).startswith("0 written, 2 skipped")
    assert done_message(events[1]).startswith("1 written, 0 skipped")
    assert all((out / name).stat().st_mtime_ns == mtime for name, mtime in finished.items())  # not rewritten
    assert all((out / f"b{suffix}").exists() for suffix in OUTPUT_SUFFIXES)
