"""Argument types and printing shared by sub-commands."""

from __future__ import annotations

import argparse
import math

from ..lesions import Lesion


def finite(text: str) -> float:
    """A finite number (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    return value


def probability(text: str) -> float:
    value = finite(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in (0, 1)")
    return value


def non_negative(text: str) -> float:
    value = finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def whole_number(text: str, minimum: int) -> int:
    """An integer ≥ ``minimum`` (argparse type through `functools.partial` or the helpers below)."""
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def non_negative_int(text: str) -> int:
    return whole_number(text, 0)


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (argparse type)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def lesion_table(lesions: list[Lesion]) -> str:
    """A fixed-width text table of lesions for the terminal."""
    header = f"{'lesion':<8}{'conf.':>7}{'volume mm3':>13}{'diam. mm':>10}   centroid RAS (mm)"
    rows = [
        f"{lesion.label:<8}{lesion.confidence_max:>7.2f}{lesion.volume_mm3:>13.1f}{lesion.longest_axial_diameter_mm:>10.1f}"
        f"   ({lesion.centroid_ras[0]:.1f}, {lesion.centroid_ras[1]:.1f}, {lesion.centroid_ras[2]:.1f})"
        for lesion in lesions
    ]
    return "\n".join([header, *rows]) if rows else "no lesions found"
