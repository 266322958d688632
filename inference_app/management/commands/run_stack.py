"""`make run`: the embedded engine, a Celery worker with beat, and daphne, stopped together.

Each part runs under inference_app/process_guard.py, so it and anything it starts end with this
command, even when this command is killed outright (SIGKILL): no server outlives it holding a
port. Their output comes through here, prefixed with the part's name; when a part exits early its
last lines are repeated under the "exited" message, where the user looks for the reason.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference_app import process_guard
from inference_app.ports import port_in_use_message

GUARD = str(Path(process_guard.__file__).resolve())
TAIL_LINES = 30
# Guards stop their command within GRACE_SECONDS (then SIGKILL it): wait a little longer.
STOP_SECONDS = process_guard.GRACE_SECONDS + process_guard.LEFTOVER_GRACE_SECONDS + 3
HEALTH_POLL_SECONDS = 1.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))
    reader: threading.Thread | None = None


class Command(BaseCommand):
    help = "Run the whole product on one machine: engine, Celery worker + beat, daphne."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument(
            "--no-engine", action="store_true", help="use external deployments only"
        )

    def handle(self, *args, port, host, no_engine, **options):
        self._check_ports(host=host, port=port, no_engine=no_engine)
        if not no_engine:
            self._warn_if_embedded_deployment_elsewhere()
        self._output_lock = threading.Lock()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if no_engine:
            # Nobody starts the embedded engine: /healthz must not wait for it as "starting".
            env["EMBEDDED_ENGINE_START_SECONDS"] = "0"
        children = [
            self._start(name, argv, env) for name, argv in self._commands(host, port, no_engine)
        ]

        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        readiness = Readiness(self, host=host, port=port)
        exit_code = 0
        while not stopping:
            for child in children:
                if child.process.poll() is not None:
                    self._report_exit(child)
                    exit_code = child.process.returncode or 1
                    stopping = True
                    break
            else:
                readiness.check()
                time.sleep(0.3)
        self._stop(children)
        sys.exit(exit_code)

    def _check_ports(self, *, host: str, port: int, no_engine: bool) -> None:
        """Refuse to start anything when a port we need is taken, naming it."""
        problems = [
            port_in_use_message(host, port, what="the web port", variable="PORT"),
        ]
        if not no_engine:
            problems.append(
                port_in_use_message(
                    settings.EMBEDDED_ENGINE_HOST,
                    settings.EMBEDDED_ENGINE_PORT,
                    what="the embedded engine's port",
                    variable="EMBEDDED_ENGINE_PORT",
                )
            )
        problems = [problem for problem in problems if problem]
        if problems:
            raise CommandError("\n".join([*problems, "Nothing was started."]))

    def _warn_if_embedded_deployment_elsewhere(self) -> None:
        """The embedded deployment's URL is written by `bootstrap_demo`: if EMBEDDED_ENGINE_PORT
        changed since, the gateway would wait for an engine that is not there."""
        from django.db import connection

        from inference_app.catalog import EMBEDDED_DEPLOYMENT_NAME
        from inference_app.models import Deployment

        try:
            base_url = (
                Deployment.objects.filter(name=EMBEDDED_DEPLOYMENT_NAME, is_enabled=True)
                .values_list("base_url", flat=True)
                .first()
            )
        except Exception:
            return  # no database yet: daphne and /healthz will say so
        finally:
            connection.close()
        if base_url and base_url.rstrip("/") != settings.EMBEDDED_ENGINE_URL.rstrip("/"):
            self.stderr.write(
                f"warning: deployment {EMBEDDED_DEPLOYMENT_NAME} points at {base_url}, but the "
                f"engine will listen on {settings.EMBEDDED_ENGINE_URL} "
                "(`manage.py bootstrap_demo` updates it; `make run` does that)"
            )

    def _commands(self, host: str, port: int, no_engine: bool) -> list[tuple[str, list[str]]]:
        python = sys.executable
        commands = []
        if not no_engine:
            commands.append(("engine", [python, "manage.py", "run_engine"]))
        commands.append(
            (
                "celery",
                [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "inference_app",
                    "worker",
                    "--beat",
                    "--pool=solo",
                    "--loglevel=warning",
                    f"--schedule={settings.CELERY_BEAT_SCHEDULE_FILENAME}",
                ],
            )
        )
        websocket_max = settings.MAX_REQUEST_BYTES + 64 * 1024  # room for the JSON around it
        commands.append(
            (
                "web",
                [
                    python,
                    "-m",
                    "daphne",
                    # Twisted's default listen backlog is 50: a burst of hundreds of clients
                    # opening streams at once gets connection resets. 2048 is uvicorn's default.
                    "-e",
                    f"tcp:port={port}:interface={host}:backlog=2048",
                    # daphne resets a websocket whose message passes 1 MiB: a Playground
                    # message with an image may be as large as any API body.
                    f"--websocket-max-message-size={websocket_max}",
                    f"--websocket-max-frame-size={websocket_max}",
                    "inference_app.asgi:application",
                ],
            )
        )
        return commands

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        self.stdout.write(f"starting {name}: {' '.join(argv[1:])}")
        process = subprocess.Popen(
            # -I: the guard needs only the standard library, not this project's package.
            [sys.executable, "-I", GUARD, str(os.getpid()), *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C reaches this command only, which stops the parts in order.
            start_new_session=True,
        )
        child = Child(name=name, process=process)
        child.reader = threading.Thread(
            target=self._relay, args=(child,), name=f"output of {name}", daemon=True
        )
        child.reader.start()
        return child

    def _relay(self, child: Child) -> None:
        """Copy a part's output to ours, prefixed with its name, keeping its last lines."""
        for raw in child.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            child.tail.append(line)
            self.say(f"{child.name:>6} | {line}")

    def say(self, line: str, *, error: bool = False) -> None:
        with self._output_lock:
            stream = self.stderr if error else self.stdout
            stream.write(line)
            stream.flush()

    def _report_exit(self, child: Child) -> None:
        if child.reader is not None:
            child.reader.join(timeout=2)  # its last words, once the pipe closes
        lines = list(child.tail)
        message = f"{child.name} exited with {child.process.returncode}; stopping the rest."
        if lines:
            message += f"\nIts last {len(lines)} lines:\n" + "\n".join(
                f"    {line}" for line in lines
            )
        else:
            message += " It printed nothing."
        self.say(message, error=True)

    def _stop(self, children: list[Child]) -> None:
        for child in children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for child in children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # The guard is stuck: kill it; its command still gets SIGTERM (PDEATHSIG).
                child.process.kill()
                child.process.wait()
        for child in children:
            if child.reader is not None:
                child.reader.join(timeout=2)


class Readiness:
    """Polls /healthz until the stack answers 200, then says once where to go.

    While the embedded engine loads /healthz answers 503 with status "starting"; requests in
    that window would get 503, so "ready" waits for it."""

    def __init__(self, command: Command, *, host: str, port: int) -> None:
        self.command = command
        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        self.url = f"http://{local}:{port}/healthz"
        self.shown_url = f"http://{host}:{port}/"
        self.ready = False
        self.next_poll = 0.0
        self.last_waiting = ""

    def check(self) -> None:
        if self.ready or time.monotonic() < self.next_poll:
            return
        self.next_poll = time.monotonic() + HEALTH_POLL_SECONDS
        try:
            response = httpx.get(self.url, timeout=5)
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return  # daphne is not listening yet
        if response.status_code == 200:
            self.ready = True
            self.command.say(f"\nYardstick is ready on {self.shown_url}{demo_hint()}\n")
            self.command.say("(Ctrl-C stops everything)")
            return
        self._waiting(body)

    def _waiting(self, body: dict) -> None:
        if body.get("status") == "starting":
            starting = [
                name
                for name, deployment in (body.get("deployments") or {}).items()
                if deployment.get("state") == "starting"
            ]
            message = f"waiting for the engine to load... ({', '.join(starting)})"
        else:
            database = body.get("database") or {}
            message = f"waiting: /healthz says {body.get('status')} ({database.get('detail')})"
        if message != self.last_waiting:
            self.last_waiting = message
            self.command.say(message)


def demo_hint() -> str:
    """ " (sign in as demo / demo-password)" when `bootstrap_demo` made that account."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from inference_app.management.commands.bootstrap_demo import DEMO_PASSWORD, DEMO_USERNAME

    try:
        exists = get_user_model().objects.filter(username=DEMO_USERNAME).exists()
    except Exception:
        return ""
    finally:
        connection.close()
    return f" (sign in as {DEMO_USERNAME} / {DEMO_PASSWORD})" if exists else ""
