"""`make run`: the embedded engine, a Celery worker with beat, and daphne, stopped together."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the whole product on one machine: engine, Celery worker + beat, daphne."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument(
            "--no-engine", action="store_true", help="use external deployments only"
        )

    def handle(self, *args, port, host, no_engine, **options):
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
                    "inference_app.asgi:application",
                ],
            )
        )
        children = []
        for name, argv in commands:
            self.stdout.write(f"starting {name}: {' '.join(argv[1:])}")
            children.append((name, subprocess.Popen(argv, start_new_session=True)))
        self.stdout.write(
            f"\nYardstick is up on http://{host}:{port}/  (Ctrl-C stops everything)\n"
        )

        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, child in children:
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with {child.returncode}; stopping the rest")
                    exit_code = child.returncode or 1
                    stopping = True
            time.sleep(0.3)
        for _, child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        sys.exit(exit_code)
