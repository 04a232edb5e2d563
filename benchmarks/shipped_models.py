"""End-to-end time and peak memory of the shipped models, as a user runs them: `lesiondetect detect` in a fresh
process (interpreter start, imports, model load, read, detect, write), side by side in one run.

    python benchmarks/shipped_models.py [--device cpu|cuda] [--repeats 3] [--warm]

``--warm`` instead times read → detect → write inside one process with the model loaded and one warm-up run
done (CUDA context, cuDNN plans), stage by stage: what a Slicer session or a batch job pays per scan.

Inputs: a real BraTS FLAIR (240×240×155, 1 mm) for `brain-mri-lesions`; a real MS FLAIR in MNI space
(182×218×182, 1 mm) and the shipped MS FLAIR sample for `ms-flair-lesions`, and both with their T1 for
`ms-flair-t1-lesions` (two input channels: ``--channel T1=…``); the synthetic 512×512×300 CT of
`cases.py`, the real whole-torso CT and the shipped sarcoma sample for `ct-tumours` (inputs or models that are
absent are skipped). Repeats are interleaved; the median is
reported, with the peak resident memory of the process (``wait4`` ru_maxrss).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from cases import SHARED_DATA, synthetic_ct_case
from run import cpu_model

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLES = REPOSITORY / "LesionDetectLib" / "sample_data"


class Input(NamedTuple):
    """One benchmark input: its label, the (first channel's) image, the model, and the model's other channels."""

    label: str
    path: Path
    model: str
    channels: dict[str, Path] = {}


def inputs() -> list[Input]:
    """Every input present."""
    ms07 = SHARED_DATA / "ms-lesion-mri" / "patient07"
    candidates = [
        Input("BraTS FLAIR 240×240×155", next(iter(sorted((SHARED_DATA / "brain-tumour-mri").glob("*/flair.nii.gz"))),
                                              None), "brain-mri-lesions"),
        Input("MS FLAIR 182×218×182 (MNI)", ms07 / "flair.nii.gz", "ms-flair-lesions"),
        Input("MS FLAIR + T1 182×218×182", ms07 / "flair.nii.gz", "ms-flair-t1-lesions", {"T1": ms07 / "t1.nii.gz"}),
        Input("MS FLAIR sample (shipped)", SAMPLES / "ms_flair.nrrd", "ms-flair-lesions"),
        Input("MS FLAIR + T1 sample (shipped)", SAMPLES / "ms_flair.nrrd", "ms-flair-t1-lesions",
              {"T1": SAMPLES / "ms_t1.nrrd"}),
        Input("synthetic CT 512×512×300", synthetic_ct_case((300, 512, 512)).path, "ct-tumours"),
        Input("real torso CT 122×101×112", SHARED_DATA / "real-ct-nifti" / "ct_3mm.nii.gz", "ct-tumours"),
        Input("sarcoma CT sample (shipped)", SAMPLES / "ct_sarcoma.nrrd", "ct-tumours"),
    ]
    return [case for case in candidates
            if case.path is not None and all(path.exists() for path in (case.path, *case.channels.values()))]


def single_channel(cases: list[Input]) -> list[Input]:
    """The inputs of one-channel models (what the version comparisons run: older code may not take channels)."""
    return [case for case in cases if not case.channels]


def read_inputs(case: Input):
    """What `detect` takes for ``case``: its volume, or ``{channel: volume}`` with the main image first."""
    from LesionDetectLib import read_volume

    if not case.channels:
        return read_volume(case.path)
    from LesionDetectLib import load_model

    first = load_model(case.model).spec.needed_channels[0]
    return {first: read_volume(case.path), **{name: read_volume(path) for name, path in case.channels.items()}}


def run_once(case: Input, device: str) -> tuple[float, float]:
    """Seconds and peak GiB of one `lesiondetect detect` process."""
    with tempfile.TemporaryDirectory() as out:
        channels = [part for name, path in case.channels.items() for part in ("--channel", f"{name}={path}")]
        command = [sys.executable, "-m", "LesionDetectLib", "detect", str(case.path), *channels, "-o", out,
                   "--model", case.model, "--device", device, "--progress", "none", "--quiet"]
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPOSITORY)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
    return seconds, usage.ru_maxrss / 2**20


class StageClock:
    """Seconds spent in each stage, switched by `enter` or by `detect`'s progress callback."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.stage = "read"
        self.since = time.perf_counter()

    def enter(self, stage: str) -> None:
        if stage == self.stage:
            return
        now = time.perf_counter()
        self.seconds[self.stage] = self.seconds.get(self.stage, 0.0) + now - self.since
        self.stage, self.since = stage, now

    def progress(self, stage: str, fraction: float, message: str) -> None:
        if stage != "warning":
            self.enter(POSTPROCESS_STAGES.get(message, stage))


# "lesions" includes resampling each candidate lesion's box onto the input grid (`lesion_boxes`); until
# 2026-12-02 the whole map was resampled first, in a stage of its own ("resample back")
POSTPROCESS_STAGES = {"connected components and measurements": "lesions"}
STAGES = ("read", "checks", "preprocess", "inference", "lesions", "write")


def warm_stages(case: Input, device: str, repeats: int) -> dict[str, float]:
    """Median seconds per stage (and in all) of read → detect → write in this process, after one warm-up run."""
    from LesionDetectLib import detect, load_model

    model = load_model(case.model)
    runs = []
    for repeat in range(repeats + 1):
        clock = StageClock()
        volume = read_inputs(case)
        clock.enter("checks")
        result = detect(volume, model, device=device, progress=clock.progress)
        clock.enter("write")
        with tempfile.TemporaryDirectory() as out:
            result.write(out)
        clock.enter("done")
        if repeat:
            runs.append({**clock.seconds, "total": sum(clock.seconds.values())})
    return {key: statistics.median(run.get(key, 0.0) for run in runs) for key in (*STAGES, "total")}


def print_warm(cases: list[Input], device: str, repeats: int) -> None:
    """Stage table of `warm_stages` for every input."""
    print(f"{'input':30s} {'model':20s} " + " ".join(f"{stage:>13s}" for stage in (*STAGES, "total")))
    for case in cases:
        seconds = warm_stages(case, device, repeats)
        print(f"{case.label:30s} {case.model:20s} " + " ".join(f"{seconds[key]:13.3f}" for key in (*STAGES, "total")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm", action="store_true", help="stage times in one process, model loaded and warm")
    args = parser.parse_args()
    cases = inputs()
    if args.warm:
        print(f"{cpu_model()}, {os.cpu_count()} cores, device {args.device}, warm, median of {args.repeats}")
        print_warm(cases, args.device, args.repeats)
        return 0
    times: dict[str, list[tuple[float, float]]] = {case.label: [] for case in cases}
    for _ in range(args.repeats):
        for case in cases:
            times[case.label].append(run_once(case, args.device))
    print(f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()}, device {args.device}, median of {args.repeats}")
    print(f"{'input':30s} {'model':20s} {'seconds':>8s} {'peak GiB':>9s}")
    for case in cases:
        seconds = statistics.median(t for t, _ in times[case.label])
        peak = max(m for _, m in times[case.label])
        print(f"{case.label:30s} {case.model:20s} {seconds:8.1f} {peak:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
