"""Progress reporting: a tqdm bar for people, JSON lines for programs (the Slicer module), or nothing."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TextIO

ProgressCallback = Callable[[str, float, str], None]
MODES = ("bar", "jsonl", "none")


def jsonl_reporter(stream: TextIO | None = None) -> ProgressCallback:
    """One ``{"stage", "fraction", "message"}`` object per line, flushed at once."""

    def report(stage: str, fraction: float, message: str) -> None:
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


def make_reporter(mode: str) -> ProgressCallback:
    """The reporter for ``--progress bar|jsonl|none``."""
    if mode == "jsonl":
        return jsonl_reporter()
    if mode == "bar":
        return bar_reporter()
    return lambda stage, fraction, message: None
