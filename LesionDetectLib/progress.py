"""Progress reporting, the one way the library tells how far a job is: a `ProgressCallback` called with
(stage, fraction done, message). Detection, comparison and training call it; this module makes the callbacks for
``--progress``: a tqdm bar for people, JSON lines for programs (the Slicer module), or nothing.

Training also reports each optimiser step, as stage `STEP` with a message ``WHERE: FIGURES`` (e.g. ``epoch 3/10:
loss 0.4312, lr 1.00e-03``): `step_bar_reporter` shows it on its bar, and JSON lines leave it out.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TextIO

ProgressCallback = Callable[[str, float, str], None]
MODES = ("bar", "jsonl", "none")
STEP = "step"
"""The stage of one unit of work done, reported too often for a line each (a training step)."""
STEP_BAR_UNITS = 1_000_000  # a step bar's resolution: it counts millionths of the job


def silent(stage: str, fraction: float, message: str) -> None:
    """Report nothing."""


def jsonl_reporter(stream: TextIO | None = None) -> ProgressCallback:
    """One ``{"stage", "fraction", "message"}`` object per line, flushed at once (`STEP` reports are left out)."""

    def report(stage: str, fraction: float, message: str) -> None:
        if stage == STEP:
            return
        out = stream or sys.stdout
        out.write(json.dumps({"stage": stage, "fraction": round(float(fraction), 4), "message": message}) + "\n")
        out.flush()

    return report


def bar_reporter(stream: TextIO | None = None) -> ProgressCallback:
    """A tqdm bar (0–100 %) whose description is the current stage."""
    from tqdm import tqdm

    bar = tqdm(total=100, file=stream or sys.stderr, bar_format="{desc:<12} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def report(stage: str, fraction: float, message: str) -> None:
        bar.set_description_str(stage)
        bar.update(max(0, round(fraction * 100) - bar.n))
        if stage in ("done", "error"):
            bar.close()

    return report


def step_bar_reporter(stream: TextIO | None = None) -> ProgressCallback:
    """A tqdm bar of `STEP` reports: the step's ``WHERE`` as its description, its ``FIGURES`` after the time
    left. It appears at the first step and closes when the job is done; other messages are written above it (on
    their own lines before it appears and after it closes); ``done`` and ``error`` only close it."""
    from tqdm import tqdm

    out = stream or sys.stderr
    bars: list[tqdm] = []  # the bar, once a step has been reported

    def report(stage: str, fraction: float, message: str) -> None:
        bar = bars[0] if bars else None
        showing = bar is not None and not bar.disable
        if stage in ("done", "error"):
            if showing:
                bar.close()
        elif stage != STEP:
            if showing:
                bar.write(message, file=out)
            else:
                print(message, file=out, flush=True)
        elif bar is None or showing:
            units = min(STEP_BAR_UNITS, max(0, round(fraction * STEP_BAR_UNITS)))
            where, _, figures = message.partition(": ")
            if bar is None:
                bar = tqdm(total=STEP_BAR_UNITS, initial=units, desc=where, postfix=figures, file=out,
                           dynamic_ncols=True, bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]")
                bars.append(bar)
            else:
                bar.set_description_str(where, refresh=False)
                bar.set_postfix_str(figures, refresh=False)
                bar.update(max(0, units - bar.n))
            if units == STEP_BAR_UNITS:
                bar.close()

    return report


def make_reporter(mode: str, bar: Callable[[], ProgressCallback] = bar_reporter) -> ProgressCallback:
    """The reporter for ``--progress bar|jsonl|none``; ``bar`` makes the bar (`step_bar_reporter` for training)."""
    if mode == "jsonl":
        return jsonl_reporter()
    if mode == "bar":
        return bar()
    return silent
