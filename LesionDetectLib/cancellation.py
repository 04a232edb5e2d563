"""Cancellation by signal (Ctrl-C, SIGTERM, the Slicer Cancel button), the same whenever the signal arrives.

The command installs `handle_signals`. While the work runs (`armed`), the first SIGTERM or SIGINT raises
`KeyboardInterrupt`, a BaseException, so that no library's ``except Exception`` swallows it and every ``finally``
and cleanup on the way out runs. Later signals are only recorded: a second Ctrl-C cannot cut the cleanup short.
Cleanup itself runs `shielded`: a first signal arriving there is raised when it is done. Afterwards `received`
tells whether a signal came at all, whatever a library made of the KeyboardInterrupt (VTK's lazy import turns
one into an ImportError), so the command can exit 130 in every case.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class _State:
    signum: int | None = None  # the first signal received
    armed: bool = False  # the first signal raises KeyboardInterrupt (else it is only recorded)
    shield: int = 0  # depth of `shielded` sections in the main thread
    deferred: bool = False  # a signal arrived inside a shielded section


_state = _State()


def message(signum: int) -> str:
    """'cancelled by signal SIGTERM', or for Ctrl-C 'cancelled (interrupted)'."""
    return "cancelled (interrupted)" if signum == signal.SIGINT else f"cancelled by signal {signal.Signals(signum).name}"


def received() -> str | None:
    """The cancellation message when a signal arrived since `handle_signals` began, else None."""
    return None if _state.signum is None else message(_state.signum)


def _on_signal(signum: int, frame) -> None:
    if _state.signum is not None:
        return  # only the first signal cancels; the others must not interrupt the cleanup
    _state.signum = signum
    if _state.shield:
        _state.deferred = True
    elif _state.armed:
        raise KeyboardInterrupt(message(signum))


@contextmanager
def handle_signals(restore: bool = True) -> Iterator[None]:
    """Handle SIGTERM and SIGINT as described above (from a fresh state); put the previous handlers back after."""
    previous: dict[int, Callable | int | None] = {signum: signal.getsignal(signum) for signum in SIGNALS}
    _state.signum, _state.armed, _state.shield, _state.deferred = None, False, 0, False
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        _state.armed = False
        if restore:
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def armed() -> Iterator[None]:
    """While the work runs: the first signal raises KeyboardInterrupt (at once, or at the end of a shielded part)."""
    _state.armed = True
    try:
        if _state.signum is not None:  # arrived before the work began
            raise KeyboardInterrupt(message(_state.signum))
        yield
    finally:
        _state.armed = False


@contextmanager
def shielded() -> Iterator[None]:
    """Code that must run to its end (removing temporary outputs, restoring stderr): a signal waits for it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.shield += 1
    try:
        yield
    finally:
        _state.shield -= 1
        if not _state.shield and _state.deferred:
            _state.deferred = False
            if _state.armed:
                raise KeyboardInterrupt(message(_state.signum))
