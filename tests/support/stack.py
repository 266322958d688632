"""The product run for real: `manage.py migrate`, a seeding subprocess and N daphne processes.

    stack = Stack(database_url=..., var_dir=tmp, redis_url=..., redis_key_prefix=...)
    stack.migrate()
    stack.seed({...})                         # see tests/support/seed.py; keys in stack.api_keys
    stack.start_servers(2)                    # stack.urls -> ["http://127.0.0.1:P1", ...]
    ...
    stack.stop()

Every child gets the same environment, so several daphne processes share one database and
(when given) one Redis under one key prefix, exactly as a scaled deployment would.
"""

import json
import os
import signal
import time
from pathlib import Path
from subprocess import Popen

from tests.support import database
from tests.support.processes import (
    PYTHON,
    free_port,
    run_checked,
    server_argv,
    start_process,
    stop_process,
    wait_until_answers,
)

# Nothing listens here (port 9 is "discard", closed on this machine): an engine that is down.
CLOSED_ENGINE_URL = "http://127.0.0.1:9/v1"


def sqlite_database_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'live.sqlite3'}"


class Stack:
    def __init__(
        self,
        *,
        database_url: str,
        var_dir: Path,
        redis_url: str = "",
        redis_key_prefix: str = "",
        embedded_engine_url: str = CLOSED_ENGINE_URL,
        env: dict[str, str] | None = None,
        server: str = "daphne",
    ) -> None:
        # The ASGI server of start_servers() (tests.support.processes.SERVERS).
        self.server = server
        self.database_url = database_url
        self.var_dir = Path(var_dir)
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.redis_url = redis_url
        self.redis_key_prefix = redis_key_prefix
        self.env = self._environment(embedded_engine_url, env or {})
        self.servers: list[tuple[Popen, int]] = []
        # Raw API keys by label, from every seed() call.
        self.api_keys: dict[str, str] = {}

    def _environment(self, embedded_engine_url: str, extra: dict[str, str]) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            # The test process's own settings must not leak into the product's.
            if not key.startswith(("DJANGO_", "PYTEST_", "REDIS_", "DATABASE_", "CELERY_"))
        }
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "inference_app.settings",
                "DATABASE_URL": self.database_url,
                "EMBEDDED_ENGINE_URL": embedded_engine_url,
                "CELERY_TASK_ALWAYS_EAGER": "1",
                "YARDSTICK_VAR_DIR": str(self.var_dir),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
            env["REDIS_KEY_PREFIX"] = self.redis_key_prefix
        env.update(extra)
        return env

    # --- set-up --------------------------------------------------------------------------
    def migrate(self) -> None:
        run_checked([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env=self.env)

    def seed(self, spec: dict) -> dict:
        """Create rows through the product's services (tests/support/seed.py); returns its JSON.

        The raw API keys it created are also kept in `self.api_keys` by label."""
        out = run_checked(
            [PYTHON, "-m", "tests.support.seed"], env=self.env, input_text=json.dumps(spec)
        )
        result = json.loads(out)
        self.api_keys.update(result["api_keys"])
        return result

    def start_servers(self, count: int = 1) -> list[str]:
        """Start `count` more server processes (daphne unless `server` says otherwise) on free
        ports; wait until each answers HTTP."""
        started = []
        for _ in range(count):
            port = free_port()
            log_path = self.var_dir / f"{self.server}-{port}.log"
            process = start_process(
                server_argv(self.server, port),
                env=self.env,
                log_path=log_path,
            )
            self.servers.append((process, port))
            started.append((process, port, log_path))
        for process, port, log_path in started:
            wait_until_answers(
                f"http://127.0.0.1:{port}/healthz", process=process, log_path=log_path
            )
        return [f"http://127.0.0.1:{port}" for _, port, _ in started]

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for _, port in self.servers]

    @property
    def url(self) -> str:
        return self.urls[0]

    def crash_server(self, url: str) -> None:
        """SIGKILL one daphne process (no cleanup runs in it: a crashed machine)."""
        for process, port in self.servers:
            if url == f"http://127.0.0.1:{port}":
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
                return
        raise ValueError(f"no server at {url}")

    def stop(self) -> None:
        for process, _ in self.servers:
            stop_process(process)
        self.servers.clear()

    # --- reading what the servers wrote ---------------------------------------------------
    def usage_rows(self, *, settle_timeout: float = 5.0) -> list[dict]:
        """Every usage row, read once no request is left unsettled.

        Settlement may end just after the client got its answer, so a row could otherwise land
        after a later test took its "before" snapshot. A request holds a reservation from
        admission until settlement writes its row (in the same transaction), so an empty
        reservation table means every answered request has its row."""
        deadline = time.monotonic() + settle_timeout
        while self.unsettled_requests() and time.monotonic() < deadline:
            time.sleep(0.05)
        return database.usage_rows(self.database_url)

    def unsettled_requests(self) -> int:
        return self.query("SELECT COUNT(*) AS n FROM billing_reservation")[0]["n"]

    def usage_rows_since(
        self, before: list[dict], *, expect: int = 0, timeout: float = 5.0
    ) -> list[dict]:
        """Rows written since the snapshot `before`, waiting up to `timeout` for `expect` of them."""
        seen = {row["request_id"] for row in before}
        deadline = time.monotonic() + timeout
        while True:
            rows = [row for row in self.usage_rows() if row["request_id"] not in seen]
            if len(rows) >= expect or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)

    def query(self, sql: str, params: tuple = ()) -> list[dict]:
        return database.query(self.database_url, sql, params)

    def execute(self, sql: str, params: tuple = ()) -> None:
        database.execute(self.database_url, sql, params)
