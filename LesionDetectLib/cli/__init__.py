"""The `lesiondetect` command: argument parsing, progress and exit codes (the work lives in the library)."""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys

from ..errors import CancelledError, LesionDetectError

SUBCOMMANDS = ("detect", "compare", "add_lesion", "dicom_seg", "models", "demo", "train", "evaluate")
ERROR_PREFIX = "lesiondetect: error: "
"""Starts the one stderr line of a failed command; the Slicer module reads it (shared, so defined once)."""


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="lesiondetect", description="AI lesion detection in CT and MRI.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    return parser


def _cancel(signum, frame) -> None:
    """SIGTERM → KeyboardInterrupt: a BaseException, so no library's ``except Exception`` can swallow it."""
    raise KeyboardInterrupt(f"cancelled by signal {signal.Signals(signum).name}")


def report_error(message: str, exit_code: int, progress_mode: str) -> None:
    """One line on stderr; with ``--progress jsonl`` also a final ``"stage": "error"`` object on stdout."""
    message = " ".join(message.split())
    if progress_mode == "jsonl":
        print(json.dumps({"stage": "error", "fraction": 1.0, "message": message, "exit_code": exit_code}), flush=True)
    print(f"{ERROR_PREFIX}{message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(errors="backslashreplace")  # never crash on a terminal that cannot show "mm³"
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _cancel)
    progress_mode = getattr(args, "progress", "none")
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt as interrupt:
        error: LesionDetectError = CancelledError(str(interrupt) or "cancelled (interrupted)")
    except LesionDetectError as raised:
        error = raised
    except MemoryError:
        error = LesionDetectError("out of memory; try a smaller --batch-size, or --device cpu")
    report_error(str(error), error.exit_code, progress_mode)
    return error.exit_code
