"""Process runners for the logic tests (in pytest and in Slicer's self-test): the real `SubprocessRunner`, running
`intensityModel.py` in place of the detection command, and optionally damaging its outputs before the logic reads
them."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from .runner import FinishedCallback, LineCallback, SubprocessRunner

INTENSITY_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "intensityModel.py")


class IntensityModelRunner(SubprocessRunner):
    """Runs ``<python> intensityModel.py INPUT OUTPUT *arguments`` in a real process instead of ``detect`` (or of
    ``add-lesion``, passing its point as ``--add-at``; ``compare`` runs as ``intensityModel.py compare …``, the
    real comparison of the stand-in model's lesions; other commands run unchanged), with the command's own Python, input, output folder and
    environment; ``damage(outputFolder)`` runs before the logic is told the process finished."""

    def __init__(self, *arguments: str, damage: Callable[[str], None] | None = None) -> None:
        super().__init__(pollIntervalMs=20, terminateGraceS=1.0)
        self.arguments, self.damage = arguments, damage
        self.commands: list[list[str]] = []

    def start(self, command: Sequence[str], environment: dict[str, str] | None, onStdoutLine: LineCallback,
              onStderrLine: LineCallback, onFinished: FinishedCallback) -> None:
        self.commands.append(list(command))
        if "compare" not in command and "detect" not in command and "add-lesion" not in command:
            super().start(command, environment, onStdoutLine, onStderrLine, onFinished)  # runs as it is
            return
        outputFolder = command[command.index("-o") + 1]

        def finished(exitCode: int) -> None:
            if self.damage is not None and exitCode == 0:
                self.damage(outputFolder)
            onFinished(exitCode)

        if "compare" in command:  # the real compare, with the stand-in model's lesions
            standIn = [INTENSITY_MODEL, *command[command.index("compare"):]]
        else:
            subcommand = "add-lesion" if "add-lesion" in command else "detect"
            at = command.index("--at") + 1 if subcommand == "add-lesion" else 0
            standIn = [INTENSITY_MODEL, command[command.index(subcommand) + 1], outputFolder, *self.arguments,
                       *(["--add-at", *command[at:at + 3]] if at else [])]
        super().start([command[0], *standIn], environment, onStdoutLine, onStderrLine, finished)
