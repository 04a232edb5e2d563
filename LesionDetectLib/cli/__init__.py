"""The `lesiondetect` command: argument parsing, progress and exit codes (the work lives in the library).

`main` runs a command in this process and returns its exit code; `run_command` is the process entry point
(``lesiondetect``, ``python -m LesionDetectLib``): it also holds off signals while the process exits, so that
a signal at any moment gives exit 130, and a reader that closes the output pipe (``| head``) ends it quietly.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import importlib
import json
import os
import signal
import sys
from contextlib import suppress

from .. import cancellation
from ..errors import CancelledError, LesionDetectError

SUBCOMMANDS = ("detect", "compare", "add_lesion", "dicom_seg", "models", "demo", "train", "evaluate")
ERROR_PREFIX = "lesiondetect: error: "
"""Starts the one stderr line of a failed command; the Slicer module reads it (shared, so defined once)."""
PIPE_CLOSED = 128 + signal.SIGPIPE  # the status a shell shows for a tool stopped by a closed pipe (141)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="lesiondetect", description="AI lesion detection in CT and MRI.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    parser.commands = subparsers.choices  # name → sub-command parser
    return parser


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; a sub-command's ``check`` (for what one option's type cannot see, such as --fold without
    --folds) reports bad usage through argparse, like a bad value: exit 2 with the usage and one error line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = args.check(args) if hasattr(args, "check") else None
    if problem:
        parser.commands[args.command].error(problem)
    return args


def report_error(message: str, exit_code: int, progress_mode: str) -> None:
    """One line on stderr; with ``--progress jsonl`` also a final ``"stage": "error"`` object on stdout."""
    message = " ".join(message.split())
    _close_progress_bars()
    if progress_mode == "jsonl":
        try:
            print(json.dumps({"stage": "error", "fraction": 1.0, "message": message, "exit_code": exit_code}),
                  flush=True)
        except BrokenPipeError:
            _silence(sys.stdout)
    try:
        print(f"{ERROR_PREFIX}{message}", file=sys.stderr, flush=True)
    except BrokenPipeError:
        _silence(sys.stderr)


def _close_progress_bars() -> None:
    """End the line of a progress bar left open by the error, so that the error has a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        with suppress(OSError, ValueError):
            bar.close()


def _is_closed_pipe(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno == errno.EPIPE


def _silence(stream) -> None:
    """Point ``stream``'s file descriptor at /dev/null: its reader has gone, and Python would complain at exit."""
    with suppress(OSError, ValueError):
        descriptor = os.open(os.devnull, os.O_WRONLY)
        os.dup2(descriptor, stream.fileno())
        os.close(descriptor)


def _flush_output() -> bool:
    """Flush stdout and stderr; False when a reader has closed one of them (it is then silenced)."""
    delivered = True
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            _silence(stream)
            delivered = False
        except (OSError, ValueError):
            pass
    return delivered


def _run(argv: list[str] | None) -> tuple[int, bool]:
    """Parse and run one command: (exit code, whether an error line was printed). Every outcome becomes an exit
    code, except a bug (its traceback is the report) and bad usage or --help (argparse's SystemExit)."""
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(errors="backslashreplace")  # never crash on a terminal that cannot show "mm³"
    progress_mode, error, code = "none", None, 0
    try:
        with cancellation.armed():
            args = parse_arguments(argv)
            progress_mode = getattr(args, "progress", "none")
            code = int(args.run(args) or 0)
    except KeyboardInterrupt as interrupt:
        error = CancelledError(str(interrupt) or "cancelled (interrupted)")
    except LesionDetectError as raised:
        error = raised
    except MemoryError:
        error = LesionDetectError("out of memory; try a smaller --batch-size, or --device cpu")
    except SystemExit:  # argparse: bad usage (2, its message printed), --help and --version (0)
        if cancellation.received() is None:
            if not _flush_output():
                return PIPE_CLOSED, True
            raise
    except BaseException as other:
        if _is_closed_pipe(other):
            _flush_output()
            return PIPE_CLOSED, True
        if cancellation.received() is None:
            raise  # a bug: its traceback is the report
    if error is None and cancellation.received() is None:
        return (code, False) if _flush_output() else (PIPE_CLOSED, True)
    if cancellation.received() is not None:  # whatever a library made of the KeyboardInterrupt, or if it
        error = CancelledError(cancellation.received())  # swallowed it and the work went on
    report_error(str(error), error.exit_code, progress_mode)
    return (CancelledError.exit_code if cancellation.received() else error.exit_code), True


def main(argv: list[str] | None = None) -> int:
    """Run the command in this process and return its exit code; the signal handlers found are put back after."""
    with cancellation.handle_signals():
        return _run(argv)[0]


def run_command() -> None:
    """The process entry point: `main`, then the process exits with the signals held off and looked at last, so
    that SIGTERM or Ctrl-C at any moment after the handlers are in place (also while Python shuts down, or while
    they were blocked by whoever started the process) gives exit 130 and one line."""
    with cancellation.handle_signals(restore=False):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, cancellation.SIGNALS)
        try:
            code, reported = _run(None)
        except SystemExit as leaving:
            code = leaving.code if isinstance(leaving.code, int) else 0 if leaving.code is None else 1
            reported = code != 0
    signal.pthread_sigmask(signal.SIG_BLOCK, cancellation.SIGNALS)
    atexit._run_exitfuncs()  # what the interpreter's shutdown runs, with the signals held off
    _flush_output()
    pending = signal.sigpending() & set(cancellation.SIGNALS)  # looked at last, right before the end
    # a signal that came just before the block has run its Python handler by now
    received = cancellation.received() or (cancellation.message(min(pending)) if pending else None)
    if received is not None:
        if not reported:
            report_error(received, CancelledError.exit_code, "none")
        code = CancelledError.exit_code
    os._exit(code)
