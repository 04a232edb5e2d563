"""The ``--progress jsonl`` protocol of ``python -m LesionDetectLib detect`` (CONTRIBUTING.md), as the module reads it.

The cancelled exit code and the stderr error prefix are the library's own constants, so both sides of the process
boundary share one definition.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from LesionDetectLib.cli import ERROR_PREFIX
from LesionDetectLib.errors import CancelledError, ComparisonError

CANCELLED_EXIT_CODE = CancelledError.exit_code
REFUSED_EXIT_CODE = ComparisonError.exit_code
"""``compare`` refused the scans: they do not align, or their lesions were found with different settings."""
STAGE_TITLES = {
    "read": "Reading the volume", "load_model": "Loading the model", "preprocess": "Preparing the image",
    "inference": "Running the model", "postprocess": "Measuring lesions", "write": "Writing results",
    "done": "Detection finished", "load": "Loading results", "error": "Failed", "detect": "Detecting lesions",
    "register": "Aligning the prior scan", "match": "Matching lesions",
}
"""What the panel's status line calls each stage."""


@dataclass(frozen=True)
class ProgressEvent:
    """One ``--progress jsonl`` line: ``stage`` is read|load_model|preprocess|inference|postprocess|write|warning|
    done|error, and for ``compare`` also detect|register|match; the module adds ``load`` while it builds the nodes."""

    stage: str
    fraction: float
    message: str
    exitCode: int | None = None


def parseProgressLine(line: str) -> ProgressEvent | None:
    """The event on a stdout line, or None for anything that is not a progress object."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("stage"), str):
        return None
    try:
        fraction = min(1.0, max(0.0, float(data.get("fraction", 0.0))))
    except (TypeError, ValueError):
        fraction = 0.0
    exitCode = data.get("exit_code")
    return ProgressEvent(data["stage"], fraction, str(data.get("message", "")),
                         exitCode if isinstance(exitCode, int) else None)


def errorMessage(errorEvent: ProgressEvent | None, stderrLines: Sequence[str], exitCode: int) -> str:
    """The clearest explanation of a failed run: the ``"stage": "error"`` message, else the CLI's error line on
    stderr, else the last lines of stderr (a crash), else the exit code alone."""
    if errorEvent is not None and errorEvent.message:
        return errorEvent.message
    for line in reversed(stderrLines):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX):].strip()
    tail = [line for line in stderrLines if line.strip()][-5:]
    if tail:
        return "\n".join(tail)
    return f"the detection process stopped with exit code {exitCode}"
