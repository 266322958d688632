"""`manage.py run_stack` (what `make run` ends with), run for real as a subprocess.

Each test gets its own SQLite file, var dir and free ports, migrated and seeded with the demo
account exactly as `make run` does. Every process a test saw is killed by PID at teardown, so a
failing test never leaves a server behind.
"""

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.process_tree import alive, descendants
from tests.support.processes import (
    PYTHON,
    REPO_DIR,
    free_port,
    run_checked,
    start_process,
    stop_process,
    tail,
    wait_until_answers,
)
from tests.support.stack import Stack, sqlite_database_url

STARTED = re.compile(r"starting (engine|celery|web)")
READY_PATTERN = (
    r"Yardstick is ready on http://127\.0\.0\.1:{port}/ \(sign in as demo / demo-password\)"
)


class RunStack:
    """One `run_stack` subprocess and everything it started, found through /proc."""

    def __init__(self, tmp_path: Path, *, no_engine: bool = True, env: dict | None = None):
        self.port = free_port()
        self.engine_port = free_port()
        self.no_engine = no_engine
        stack = Stack(
            database_url=sqlite_database_url(tmp_path),
            var_dir=tmp_path,
            embedded_engine_url=f"http://127.0.0.1:{self.engine_port}/v1",
            env={"EMBEDDED_ENGINE_PORT": str(self.engine_port), **(env or {})},
        )
        # run_stack runs its own Celery worker: no eager tasks.
        stack.env.pop("CELERY_TASK_ALWAYS_EAGER")
        self.env = stack.env
        self.log_path = tmp_path / "run_stack.log"
        self.process: subprocess.Popen | None = None
        self.seen: set[int] = set()
        stack.migrate()
        run_checked([PYTHON, "manage.py", "bootstrap_demo"], env=self.env)

    def start(self, *, port: int | None = None) -> subprocess.Popen:
        argv = [PYTHON, "manage.py", "run_stack", "--port", str(port or self.port)]
        if self.no_engine:
            argv.append("--no-engine")
        self.process = start_process(argv, env=self.env, log_path=self.log_path)
        return self.process

    def output(self) -> str:
        return tail(self.log_path, lines=400)

    def wait_for_output(self, pattern: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.output()
            if re.search(pattern, text):
                return text
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n{self.output()}")

    def family(self) -> dict[int, str]:
        """run_stack's descendants now, {pid: command line}; remembered for teardown."""
        found = descendants(self.process.pid)
        self.seen.update(found)
        return found

    def cleanup(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        for pid in self.seen:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for_family(run: RunStack, *, expect: list[str], timeout: float = 60) -> dict[int, str]:
    """Wait until a descendant's command line contains each string in `expect` (as many times)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        family = run.family()
        # Not counting the guards, whose command lines contain their command's.
        commands = [cmdline for cmdline in family.values() if "process_guard" not in cmdline]
        if all(
            sum(word in cmdline for cmdline in commands) >= expect.count(word) for word in expect
        ):
            return family
        assert run.process.poll() is None, run.output()
        time.sleep(0.2)
    raise AssertionError(f"run_stack did not start {expect} within {timeout}s:\n{run.output()}")


def assert_all_gone(run: RunStack, family: dict[int, str], ports: list[int], timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {pid: cmd for pid, cmd in family.items() if alive(pid)}
        busy = [port for port in ports if not port_is_free(port)]
        if not left and not busy:
            return
        time.sleep(0.2)
    raise AssertionError(
        f"{timeout}s after run_stack was killed, still running: {left}; ports in use: {busy}"
    )


@pytest.fixture
def run_stack(tmp_path):
    runs = []

    def make(**kwargs) -> RunStack:
        run = RunStack(tmp_path / f"run-{len(runs)}", **kwargs)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.cleanup()


def test_killing_run_stack_takes_every_child_and_grandchild_with_it(run_stack):
    run = run_stack()
    run.start()
    wait_until_answers(
        f"http://127.0.0.1:{run.port}/healthz", process=run.process, log_path=run.log_path
    )
    # The Celery worker runs beat in a process of its own: a grandchild of run_stack.
    family = wait_for_family(run, expect=["daphne", "celery", "celery"])

    started = time.monotonic()
    os.kill(run.process.pid, signal.SIGKILL)
    run.process.wait(timeout=5)
    assert_all_gone(run, family, [run.port])
    print(f"every child gone {time.monotonic() - started:.1f}s after SIGKILL: {family}")


@pytest.mark.engine
def test_killing_run_stack_takes_the_engine_with_it_and_says_ready_once_it_answers(run_stack):
    run = run_stack(no_engine=False)
    run.start()
    text = run.wait_for_output(READY_PATTERN.format(port=run.port), timeout=120)
    # Ready means ready: the embedded engine answers through the gateway's health check.
    health = httpx.get(f"http://127.0.0.1:{run.port}/healthz", timeout=10)
    assert health.status_code == 200, health.text
    assert health.json()["deployments"]["embedded-llamacpp"]["state"] == "ok", health.text
    # Whether it had to wait depends on which came up first, daphne or the engine.
    waiting = text.find("waiting for the engine to load")
    assert waiting < text.index("Yardstick is ready"), text
    family = wait_for_family(run, expect=["run_engine", "daphne", "celery", "celery"])

    os.kill(run.process.pid, signal.SIGKILL)
    run.process.wait(timeout=5)
    assert_all_gone(run, family, [run.port, run.engine_port])


def test_says_ready_once_healthz_answers_without_an_engine(run_stack):
    run = run_stack()
    run.start()
    # The demo's embedded deployment exists, but with --no-engine nobody starts it: it is
    # "down", not "starting", so the stack is ready without it.
    run.wait_for_output(READY_PATTERN.format(port=run.port), timeout=60)
    health = httpx.get(f"http://127.0.0.1:{run.port}/healthz", timeout=10)
    assert health.status_code == 200, health.text
    assert health.json()["deployments"]["embedded-llamacpp"]["state"] == "down", health.text
    # Ctrl-C (SIGINT) stops everything and exits cleanly.
    family = run.family()
    run.process.send_signal(signal.SIGINT)
    assert run.process.wait(timeout=30) == 0, run.output()
    assert_all_gone(run, family, [run.port])


def listening_socket() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


def test_a_web_port_in_use_is_named_and_nothing_starts(run_stack):
    run = run_stack()
    sock, busy = listening_socket()
    with sock:
        run.start(port=busy)
        returncode = run.process.wait(timeout=30)
    text = run.output()
    assert returncode != 0, text
    assert f"port {busy} is already in use" in text, text
    assert "is another Yardstick running?" in text and "make run picks another" in text, text
    assert not STARTED.search(text), text


def test_an_engine_port_in_use_is_named_and_nothing_starts(run_stack):
    sock, busy = listening_socket()
    with sock:
        run = run_stack(no_engine=False, env={"EMBEDDED_ENGINE_PORT": str(busy)})
        run.start()
        returncode = run.process.wait(timeout=60)
    text = run.output()
    assert returncode != 0, text
    assert f"port {busy} is already in use" in text, text
    assert "EMBEDDED_ENGINE_PORT=" in text, text
    assert not STARTED.search(text), text


def test_a_child_that_exits_early_has_its_last_lines_shown(run_stack):
    # A broker kombu does not know: the Celery worker fails at start-up with a traceback.
    run = run_stack(env={"CELERY_BROKER_URL": "bogus://"})
    run.start()
    returncode = run.process.wait(timeout=60)
    text = run.output()
    assert returncode != 0, text
    # The reason comes after run_stack's own "exited" line, where the user looks.
    report = text[text.index("celery exited with") :]
    assert "No such transport: bogus" in report, text


def test_run_engine_names_a_port_in_use(tmp_path):
    sock, busy = listening_socket()
    with sock:
        result = subprocess.run(
            [PYTHON, "manage.py", "run_engine", "--port", str(busy)],
            cwd=REPO_DIR,
            env={**os.environ, "YARDSTICK_VAR_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"port {busy} is already in use" in result.stderr, result.stderr
