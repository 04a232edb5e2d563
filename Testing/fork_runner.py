"""Run `lesiondetect` commands fast and in isolation: one process imports the library (and torch) once, then forks a
child per command, as the fuzz tests need hundreds of runs.

Each child runs the process entry point (`cli.run_command`, exactly what ``python -m LesionDetectLib`` runs) with
its stdout and stderr in files, under a time limit, and optionally gets a signal after a delay. The parent
reports the exit status, whether the time ran out, whether the signal was sent while the child lived, and the
child's peak resident memory. A signal counts as sent while the command ran only if it was sent before the child
called ``os._exit`` (the kernel may take milliseconds more to end the process, and a signal then does nothing). Protocol: one JSON request per line on stdin, one JSON answer per line on stdout.

    python Testing/fork_runner.py        (with the repository on PYTHONPATH)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback

BUG = 99  # the child's status when the command raised instead of exiting (its traceback is on stderr)


def child(request: dict) -> None:
    """In the forked child: run the command and never return."""
    try:
        os.chdir(request["cwd"])
        os.environ.update(request.get("env", {}))
        for descriptor, name in ((1, "stdout"), (2, "stderr")):
            target = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, descriptor)
            os.close(target)
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        from LesionDetectLib import cli

        real_exit = os._exit

        def exit_noting_when(code: int) -> None:  # a signal sent later found the command done
            finished = time.monotonic()
            with open(request["stdout"] + ".done", "w") as done:
                done.write(repr(finished))
            real_exit(code)

        os._exit = exit_noting_when
        sys.argv = ["lesiondetect", *request["argv"]]
        cli.run_command()  # exits the process itself
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
    os._exit(BUG)


def run(request: dict) -> dict:
    """Fork a child for ``request`` and wait for it (killing it when its time runs out)."""
    started = time.monotonic()
    signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGTERM, signal.SIGINT))  # the command unblocks them
    pid = os.fork()
    if pid == 0:
        child(request)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM, signal.SIGINT))
    deadline = started + request.get("timeout_s", 60.0)
    signal_at = request.get("signal_after_s")
    sent = None  # when the signal was sent
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        now = time.monotonic()
        if signal_at is not None and sent is None and now - started >= signal_at:
            sent = time.monotonic()
            os.kill(pid, request.get("signal", signal.SIGTERM))
        if now > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return {"status": None, "timed_out": True, "signalled": sent is not None,
                    "peak_bytes": usage.ru_maxrss * 1024, "seconds": time.monotonic() - started}
        time.sleep(0.005)
    try:
        with open(request["stdout"] + ".done") as note:
            finished = float(note.read())
    except (OSError, ValueError):
        finished = float("inf")
    return {"status": os.waitstatus_to_exitcode(status), "timed_out": False,
            "signalled": sent is not None and sent < finished,  # before the command's last instruction
            "peak_bytes": usage.ru_maxrss * 1024, "seconds": time.monotonic() - started}


def main() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch  # noqa: F401  (imported once here, not in every child)

    torch.set_num_threads(1)
    from LesionDetectLib import cli

    cli.build_parser()  # imports every sub-command
    import monai.inferers  # noqa: F401
    import monai.networks.nets  # noqa: F401

    print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        print(json.dumps(run(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
