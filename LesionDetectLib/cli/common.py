"""Argument types and printing shared by sub-commands.

Every option has a type with a range: a value outside it is bad usage (exit 2, argparse's message), never a
traceback or an unbounded run later. Numbers must be finite; whole numbers are bounded above as well.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

from ..lesions import Lesion
from ..model_spec import MAX_BATCH, MAX_LESION_MM3, MAX_OVERLAP, MAX_TEXT

MAX_COUNT = 10**6  # iterations, epochs, lesions, bootstrap resamples
MAX_SEED = 2**32 - 1  # NumPy's limit
MAX_DISTANCE_MM = 10_000.0
DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]{1,3})?")


def number(low: float, high: float, low_open: bool = False, high_open: bool = False):
    """An argparse type: a finite number in [low, high] (an open end excludes its bound)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        inside = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
        if not (math.isfinite(value) and inside):
            bounds = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"expected a number in {bounds}, got {text!r}")
        return value

    return parse


def whole_number(low: int, high: int):
    """An argparse type: an integer from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, got {text!r}")
        return value

    return parse


finite = number(-math.inf, math.inf)  # (bounds only to read well; infinite values are refused as not finite)
probability = number(0.0, 1.0, low_open=True, high_open=True)
fraction = number(0.0, 1.0)
overlap = number(0.0, MAX_OVERLAP)
lesion_volume = number(0.0, MAX_LESION_MM3)
distance_mm = number(0.0, MAX_DISTANCE_MM)
positive_int = whole_number(1, MAX_COUNT)
batch_size = whole_number(1, MAX_BATCH)
seed = whole_number(0, MAX_SEED)
non_negative = number(0.0, math.inf)  # finite: infinity is refused
non_negative_int = whole_number(0, MAX_COUNT)


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (argparse type)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def device(text: str) -> str:
    """auto, cpu, cuda or cuda:N (whether that GPU exists is known only when the run starts)."""
    if not DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def path(text: str) -> Path:
    """A file or folder name; an empty one would mean the current folder."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty one")
    return Path(text)


def text(value: str) -> str:
    """Non-empty text of at most `MAX_TEXT` characters."""
    if not value or len(value) > MAX_TEXT:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_TEXT} characters, got {len(value)}")
    return value


def lesion_table(lesions: list[Lesion]) -> str:
    """A fixed-width text table of lesions for the terminal."""
    header = f"{'lesion':<8}{'conf.':>7}{'volume mm3':>13}{'diam. mm':>10}   centroid RAS (mm)"
    rows = [
        f"{lesion.label:<8}{lesion.confidence_max:>7.2f}{lesion.volume_mm3:>13.1f}{lesion.longest_axial_diameter_mm:>10.1f}"
        f"   ({lesion.centroid_ras[0]:.1f}, {lesion.centroid_ras[1]:.1f}, {lesion.centroid_ras[2]:.1f})"
        for lesion in lesions
    ]
    return "\n".join([header, *rows]) if rows else "no lesions found"
