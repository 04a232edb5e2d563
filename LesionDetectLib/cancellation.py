"""Cancellation by signal (Ctrl-C, SIGTERM, the Slicer Cancel button), the same whenever the signal arrives.

The command installs `handle_signals`. While the work runs (`armed`), the first SIGTERM or SIGINT raises
`KeyboardInterrupt`, a BaseException, so that no library's ``except Exception`` swallows it and every ``finally``
and cleanup on the way out runs. Later signals are only recorded: a second Ctrl-C cannot cut the cleanup short.
Cleanup itself runs `shielded`: a first signal arriving there is raised when it is done. One arriving while a
module is imported is raised once the import is over: an exception inside a C extension's import can crash the
process (VTK's lazy import then dies of SIGSEGV, or turns the KeyboardInterrupt into an ImportError). Afterwards
`received` tells whether a signal came at all, whatever a library made of it, so the command can exit 130.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class _State:
    signum: int | None = None  # the first signal received
    armed: bool = False  # the first signal raises KeyboardInterrupt (else it is only recorded)
    raised: bool = False  # the KeyboardInterrupt has been raised
    shield: int = 0  # depth of `shielded` sections in the main thread
    deferred: bool = False  # a signal arrived inside a shielded section
    retrying: bool = False  # a signal arrived inside an import: it is sent again until the import is done


_state = _State()
RETRY_S = 0.02


def message(signum: int) -> str:
    """'cancelled by signal SIGTERM', or for Ctrl-C 'cancelled (interrupted)'."""
    return "cancelled (interrupted)" if signum == signal.SIGINT else f"cancelled by signal {signal.Signals(signum).name}"


def received() -> str | None:
    """The cancellation message when a signal arrived since `handle_signals` began, else None."""
    return None if _state.signum is None else message(_state.signum)


def _inside_import(frame) -> bool:
    """True while a module is being imported: an exception raised there can leave a C extension half set up (VTK's
    lazy import then crashes the process, or turns the KeyboardInterrupt into an ImportError)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _send_again() -> None:
    """From a helper thread: the first signal again to the main thread, once the import may be over."""
    time.sleep(RETRY_S)
    _state.retrying = False
    signal.pthread_kill(threading.main_thread().ident, _state.signum)


def _on_signal(signum: int, frame) -> None:
    if _state.signum is None:
        _state.signum = signum
    if _state.raised or not _state.armed:
        return  # only the first signal cancels; the others must not interrupt the cleanup
    if _state.shield:
        _state.deferred = True
    elif _inside_import(frame):
        if not _state.retrying:
            _state.retrying = True
            threading.Thread(target=_send_again, name="cancellation", daemon=True).start()
    else:
        _state.raised = True
        raise KeyboardInterrupt(message(_state.signum))


@contextmanager
def handle_signals(restore: bool = True) -> Iterator[None]:
    """Handle SIGTERM and SIGINT as described above (from a fresh state); put the previous handlers back after."""
    previous: dict[int, Callable | int | None] = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for name, value in vars(_State()).items():
        setattr(_state, name, value)
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
            _state.raised = True
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
            if _state.armed and not _state.raised:
                _state.raised = True
                raise KeyboardInterrupt(message(_state.signum))
