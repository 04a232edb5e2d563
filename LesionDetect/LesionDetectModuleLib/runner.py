"""Running ``PythonSlicer -m LesionDetectLib detect …`` beside Slicer without freezing it.

`ProcessRunner` is the seam the logic is given (tests pass their own). `SubprocessRunner` starts the command in its
own process group (POSIX session / Windows process group), reads stdout and stderr on two small threads that only put
lines into a queue, and hands the lines to callbacks from a ``qt.QTimer`` on Slicer's main thread. ``cancel()`` stops
the whole process tree: ``PythonSlicer`` is a launcher that starts the real interpreter as a child, so stopping only
the direct child would leave inference running.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import qt
import slicer

POLL_INTERVAL_MS = 100
TERMINATE_GRACE_S = 3.0
"""After a polite stop request (SIGTERM: the library cleans up and exits with its cancelled code), wait this long,
then kill."""

LineCallback = Callable[[str], None]
FinishedCallback = Callable[[int], None]


class ProcessRunner(Protocol):
    """Runs one command at a time and reports its output lines and exit code through callbacks."""

    @property
    def isRunning(self) -> bool: ...

    def start(self, command: Sequence[str], environment: dict[str, str] | None, onStdoutLine: LineCallback,
              onStderrLine: LineCallback, onFinished: FinishedCallback) -> None:
        """Start ``command``; ``onFinished(exitCode)`` is called once, after the last output line."""

    def cancel(self) -> None:
        """Stop the command; ``onFinished`` follows."""

    def wait(self) -> None:
        """Block (keeping the GUI responsive) until ``onFinished`` has been called."""


class SubprocessRunner:
    """Runs one command at a time; all callbacks are called on the thread that calls `poll` (Slicer's main thread)."""

    def __init__(self, pollIntervalMs: int = POLL_INTERVAL_MS, terminateGraceS: float = TERMINATE_GRACE_S):
        self._pollIntervalMs = pollIntervalMs
        self._terminateGraceS = terminateGraceS
        self._process: subprocess.Popen | None = None
        self._timer = None
        self._lines: queue.Queue = queue.Queue()
        self._openStreams = 0
        self._callbacks: tuple[LineCallback, LineCallback, FinishedCallback] | None = None
        self._killDeadline: float | None = None
        self._cancelRequested = False
        self._polling = False

    @property
    def isRunning(self) -> bool:
        return self._callbacks is not None

    def start(self, command: Sequence[str], environment: dict[str, str] | None,
              onStdoutLine: LineCallback, onStderrLine: LineCallback, onFinished: FinishedCallback) -> None:
        """Start ``command``; ``onFinished(exitCode)`` is called once, after the last output line."""
        if self.isRunning:
            raise RuntimeError("a process is already running")
        self._process = subprocess.Popen(
            list(command), env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace", bufsize=1, **_ownProcessGroupOptions(),
        )
        self._callbacks = (onStdoutLine, onStderrLine, onFinished)
        self._killDeadline = None
        self._cancelRequested = False
        self._lines = queue.Queue()  # a fresh queue: a killed run's late end-of-stream marks cannot leak in
        self._openStreams = 2
        for name, stream in (("stdout", self._process.stdout), ("stderr", self._process.stderr)):
            threading.Thread(target=_readLines, args=(name, stream, self._lines), daemon=True).start()
        self._timer = qt.QTimer()
        self._timer.setInterval(self._pollIntervalMs)
        self._timer.connect("timeout()", self.poll)
        self._timer.start()

    def poll(self) -> None:
        """Deliver queued output; once the process has exited and both streams are drained, report the exit code."""
        if self._polling or not self.isRunning:
            return
        self._polling = True
        try:
            onStdoutLine, onStderrLine, onFinished = self._callbacks
            while True:
                try:
                    name, line = self._lines.get_nowait()
                except queue.Empty:
                    break
                if line is None:
                    self._openStreams -= 1
                elif name == "stdout":
                    onStdoutLine(line)
                else:
                    onStderrLine(line)
            exitCode = self._process.poll()
            if self._killDeadline is not None and time.monotonic() > self._killDeadline:
                self._signalProcessTree(hard=True)
                self._killDeadline = None
            # After a hard kill nothing can hold the pipes open any more, so do not wait for them.
            killed = self._cancelRequested and self._killDeadline is None
            if exitCode is not None and (self._openStreams == 0 or killed):
                self._finish(exitCode, onFinished)
        finally:
            self._polling = False

    def _finish(self, exitCode: int, onFinished: FinishedCallback) -> None:
        self._timer.stop()
        if self._cancelRequested:
            self._signalProcessTree(hard=True)  # anything the launcher started that outlived it
        self._callbacks = None
        self._process = None
        onFinished(exitCode)

    def cancel(self) -> None:
        """Ask the whole process tree to stop now and kill it after a short grace period; `onFinished` follows."""
        if not self.isRunning or self._cancelRequested:
            return
        self._cancelRequested = True
        self._signalProcessTree(hard=False)
        self._killDeadline = time.monotonic() + self._terminateGraceS

    def wait(self, timeoutS: float | None = None) -> None:
        """Block until `onFinished` has been called, keeping Slicer's GUI responsive."""
        deadline = None if timeoutS is None else time.monotonic() + timeoutS
        while self.isRunning:
            self.poll()
            if not self.isRunning:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("the detection process did not finish in time")
            slicer.app.processEvents()
            time.sleep(0.02)

    def _signalProcessTree(self, hard: bool) -> None:
        if self._process is None:
            return
        if os.name == "nt":
            # taskkill /T walks the tree (PythonSlicer.exe -> python-real.exe); /F because console programs
            # have no window to receive a polite close request.
            subprocess.run(["taskkill", "/PID", str(self._process.pid), "/T", "/F"], capture_output=True,
                           creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is already gone
            os.killpg(self._process.pid, signal.SIGKILL if hard else signal.SIGTERM)


def _readLines(name: str, stream, lines: queue.Queue) -> None:
    """Worker thread: only moves lines into the queue (no Qt, VTK or MRML calls here); None marks the end."""
    try:
        for line in iter(stream.readline, ""):
            lines.put((name, line.rstrip("\r\n")))
    finally:
        stream.close()
        lines.put((name, None))


def _ownProcessGroupOptions() -> dict:
    """Popen options that put the child (and everything it starts) in a group of its own, without a console."""
    if os.name == "nt":
        startupInfo = subprocess.STARTUPINFO()
        startupInfo.dwFlags |= subprocess.STARTF_USESHOWWINDOW
        startupInfo.wShowWindow = 0
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        return {"creationflags": flags, "startupinfo": startupInfo}
    return {"start_new_session": True}
