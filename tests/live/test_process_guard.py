"""inference_app/process_guard.py with stand-in commands: a parent that dies outright takes the
guard, its command and the command's own children with it, even a child that ignores SIGTERM."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from inference_app import process_guard
from tests.support.process_tree import alive, descendants

PYTHON = sys.executable
GUARD = process_guard.__file__

# The command: starts a child that ignores SIGTERM (as a stuck grandchild would), then waits.
COMMAND = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
    print("command running", flush=True)
    time.sleep(120)
    """
)
# The parent (run_stack's stand-in): starts the guard in a session of its own, then waits.
PARENT = textwrap.dedent(
    f"""
    import os, subprocess, sys, time
    subprocess.Popen([sys.executable, "-I", {GUARD!r}, str(os.getpid()),
                      sys.executable, "-c", {COMMAND!r}], start_new_session=True)
    time.sleep(120)
    """
)


def wait_for(condition, timeout: float, message) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message())
        time.sleep(0.05)


def test_a_parent_killed_outright_takes_the_guard_its_command_and_grandchildren_along():
    parent = subprocess.Popen([PYTHON, "-c", PARENT], stdout=subprocess.PIPE)
    family: dict[int, str] = {}
    try:
        assert parent.stdout.readline() == b"command running\n"

        def whole_family():
            family.update(descendants(parent.pid))
            return len(family) >= 3  # guard, command, the command's child

        wait_for(whole_family, 10, lambda: f"not all started: {family}")

        parent.kill()
        parent.wait(timeout=5)
        grace = process_guard.LEFTOVER_GRACE_SECONDS + 3
        wait_for(
            lambda: not any(alive(pid) for pid in family),
            grace,
            lambda: (
                f"still running {grace}s after the parent died: "
                f"{ {pid: cmd for pid, cmd in family.items() if alive(pid)} }"
            ),
        )
    finally:
        parent.kill()
        for pid in family:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_guard_exits_with_its_commands_exit_status():
    result = subprocess.run(
        [PYTHON, "-I", GUARD, str(os.getpid()), PYTHON, "-c", "raise SystemExit(3)"], timeout=30
    )
    assert result.returncode == 3
    result = subprocess.run(
        [PYTHON, "-I", GUARD, str(os.getpid()), PYTHON, "-c", "import os; os.abort()"],
        timeout=30,
    )
    assert result.returncode == 128 + signal.SIGABRT
