"""Starting, waiting for and stopping the subprocesses a live test runs (daphne, engines).

Each child gets its own session (process group) so teardown can stop it and anything it
spawned by PID, never by name: other people run servers on this machine too.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

REPO_DIR = Path(__file__).resolve().parent.parent.parent
PYTHON = str(REPO_DIR / ".venv" / "bin" / "python")


# The ASGI servers the product runs under: daphne runs the whole product (pages, websockets
# and the API plane); uvicorn and granian run the API plane on its own (the scaled set-up).
SERVERS = ("daphne", "uvicorn", "granian")


def server_argv(server: str, port: int) -> list[str]:
    """`server` serving the product on 127.0.0.1:port (the API-only app for uvicorn/granian)."""
    if server == "daphne":
        return daphne_argv("inference_app.asgi:application", port)
    if server == "uvicorn":
        return [
            PYTHON,
            "-m",
            "uvicorn",
            "inference_app.api_asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    if server == "granian":
        return [
            PYTHON,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--no-ws",
            "--log-level",
            "warning",
            "inference_app.api_asgi:application",
        ]
    raise ValueError(f"unknown server {server!r}")


def daphne_argv(app: str, port: int) -> list[str]:
    """daphne serving the ASGI app "module:attribute" on 127.0.0.1:port."""
    return [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]


def free_port() -> int:
    """A TCP port the OS says is free right now (the child binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_process(argv: list[str], *, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it for its whole life
    try:
        return subprocess.Popen(
            argv,
            cwd=REPO_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log.close()


def wait_until_answers(
    url: str, *, process: subprocess.Popen, log_path: Path, timeout: float = 60.0, ok_only=False
) -> None:
    """Poll `url` until it answers (any HTTP status, or 200 with ok_only); fail fast if the child dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args} exited with {process.returncode} before answering:\n"
                f"{tail(log_path)}"
            )
        try:
            response = httpx.get(url, timeout=2.0)
            if not ok_only or response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"{url} did not answer within {timeout}s:\n{tail(log_path)}")


def stop_process(process: subprocess.Popen, *, grace: float = 5.0) -> None:
    """SIGTERM the child's process group, SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=grace)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def run_checked(argv: list[str], *, env: dict[str, str], input_text: str | None = None) -> str:
    """Run a short command (migrate, seeding) to completion; its stdout, or an error with its output."""
    result = subprocess.run(
        argv, cwd=REPO_DIR, env=env, input=input_text, capture_output=True, text=True, timeout=180
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout
