"""Importing a model from the panel: ``lesiondetect models import PATH [--lesion-labels N,…]`` in the detection
process's Python (a LesionDetect bundle, or a MONAI bundle folder or ``.zip``), and what its answer means."""

from __future__ import annotations

import re

from .errors import DetectionError

LESION_LABELS_PROMPT = re.compile(r"pass --lesion-labels with some of: (?P<listing>.+)$")
LABEL = re.compile(r"(\d+)=(.*?)(?=, \d+=|$)")


class LesionLabelsNeeded(DetectionError):
    """The bundle does not say which output labels are lesions: ``choices`` are (label, name) to choose from."""

    def __init__(self, choices: tuple[tuple[int, str], ...], message: str) -> None:
        super().__init__(message)
        self.choices = choices


def importArguments(path: str, lesionLabels: list[int] | None = None) -> list[str]:
    """The library command's arguments that import ``path`` (with the chosen lesion labels, if any)."""
    arguments = ["models", "import", path]
    if lesionLabels:
        arguments += ["--lesion-labels", ",".join(str(label) for label in sorted(lesionLabels))]
    return arguments


def importOutcome(exitCode: int, message: str) -> None:
    """Nothing for a successful import; `LesionLabelsNeeded` when the command asks for the lesion labels, else
    `DetectionError` with the command's message (the library installs nothing on failure)."""
    if exitCode == 0:
        return
    asked = LESION_LABELS_PROMPT.search(message)
    if asked:
        choices = tuple((int(label), name.strip()) for label, name in LABEL.findall(asked.group("listing")))
        if choices:
            raise LesionLabelsNeeded(choices, message)
    raise DetectionError(f"The model was not imported: {message}")
