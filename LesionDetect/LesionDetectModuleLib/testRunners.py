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
    ``add-lesion``, passing its point as ``--add-at``; other commands run unchanged), with the command's own Python, input, output folder and
    environment; ``damage(outputFolder)`` runs before the logic is told the process finished."""

    def __init__(self, *arguments: str, damage: Callable[[str], None] | None = None) -> None:
        super().__init__(pollIntervalMs=20, terminateGraceS=1.0)
        self.arguments, self.damage = arguments, damage
        self.commands: list[list[str]] = []

    def start(self, command: Sequence[str], environment: dict[str, str] | None, onStdoutLine: LineCallback,
              onStderrLine: LineCallback, onFinished: FinishedCallback) -> None:
        self.commands.append(list(command))
        if "detect" not in command and "add-lesion" not in command:  # another subcommand runs as it is
            super().start(command, environment, onStdoutLine, onStderrLine, onFinished)
            return
        subcommand = "add-lesion" if "add-lesion" in command else "detect"
        inputPath, outputFolder = command[command.index(subcommand) + 1], command[command.index("-o") + 1]
        point = command[command.index("--at") + 1:command.index("--at") + 4] if subcommand == "add-lesion" else []

        def finished(exitCode: int) -> None:
            if self.damage is not None and exitCode == 0:
                self.damage(outputFolder)
            onFinished(exitCode)

        super().start([command[0], INTENSITY_MODEL, inputPath, outputFolder, *self.arguments,
                       *(["--add-at", *point] if point else [])], environment,
                      onStdoutLine, onStderrLine, finished)
