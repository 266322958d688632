"""Run one command so that it, and every process it starts, ends when its parent ends.

    python -I inference_app/process_guard.py PARENT_PID COMMAND [ARG...]

`run_stack` starts each part of the stack (engine, Celery worker, daphne) through a guard. On
Linux the kernel sends the guard SIGTERM when `run_stack` ends, even by SIGKILL
(PR_SET_PDEATHSIG), so nothing outlives it holding a port. On SIGTERM, SIGINT or SIGHUP, or when
the command exits, the guard stops the command (SIGTERM, then SIGKILL after a grace period) and
then whatever it left behind in its process group (the Celery worker's beat process, for one).
The command gets its own process group, so the guard can signal the group without hitting itself.

Standard library only, and run with `-I` so it does not import the project's package: a guard
costs a few megabytes and starts in milliseconds. Elsewhere than Linux it still stops the group
on a signal, but does not notice its parent's death.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# Celery's warm shutdown takes a few seconds (it stops beat and its broker poll first).
GRACE_SECONDS = 10.0
LEFTOVER_GRACE_SECONDS = 2.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _prctl(option: int, value: int) -> None:
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM when this process's parent ends (a no-op off Linux).

    Called in the command's process between fork and exec (the guard has no threads, so that is
    safe there): if the guard itself is killed outright, the command still gets its SIGTERM."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_orphans() -> None:
    """Collect exited processes the kernel handed to this guard (it is their subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_group(pgid: int) -> None:
    """Stop what the command left running in its process group: SIGTERM, then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, LEFTOVER_GRACE_SECONDS), (signal.SIGKILL, 1.0)):
        _reap_orphans()
        if not _group_exists(pgid):
            return
        _signal_group(pgid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            _reap_orphans()
            if not _group_exists(pgid):
                return
            time.sleep(0.05)


def run(parent_pid: int, command: list[str]) -> int:
    stop_requested = False

    def request_stop(signum, frame):
        nonlocal stop_requested
        stop_requested = True

    for sig in STOP_SIGNALS:
        signal.signal(sig, request_stop)
    die_with_parent()
    # Orphans of the command (its children, once it is gone) come to the guard, not to init, so
    # the guard can wait for them to go and reap them.
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if os.getppid() != parent_pid:
        return 1  # the parent ended before PR_SET_PDEATHSIG was armed: start nothing
    child = subprocess.Popen(command, process_group=0, preexec_fn=die_with_parent)
    while child.poll() is None and not stop_requested and os.getppid() == parent_pid:
        time.sleep(0.1)
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    _stop_group(child.pid)
    code = child.returncode
    return 128 - code if code < 0 else code


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sys.exit(run(int(sys.argv[1]), sys.argv[2:]))


if __name__ == "__main__":
    main()
