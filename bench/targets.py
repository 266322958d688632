"""The processes a benchmark run starts: the fake engine, our gateway, LiteLLM proxy.

Every process is started here, pinned with `taskset` when the machine has two or more cores,
and stopped by its own PID. Ports are picked free on 127.0.0.1; nothing listens elsewhere.
"""

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
LITELLM_VENV = ROOT / "bench" / ".litellm-venv"
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
MASTER_KEY = "sk-bench-" + secrets.token_hex(8)

# The core each side runs on: the server under test gets a core to itself; the fake engine and
# the load generator (this process) share the other.
SERVER_CPU = "1"
CLIENT_CPU = "0"


def pinning_enabled() -> bool:
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Process:
    """A child process with its log file; `stop()` ends it by PID."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tree(self) -> list[int]:
        """This process and every live descendant (granian's workers, taskset's exec'd child)."""
        pids, queue = [], [self.pid]
        while queue:
            pid = queue.pop()
            pids.append(pid)
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    queue += [
                        int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
                    ]
                except OSError:
                    pass
        return pids

    def rss_mb(self) -> float | None:
        """Resident memory from /proc: the process and its live children, summed."""
        total, seen = 0, False
        for pid in self.tree():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        seen = True
                        break
            except OSError:
                continue
        return total / 1024 if seen else None

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process and its live children (granian's workers), plus
        what its reaped children used."""
        ticks = 0
        for i, pid in enumerate(self.tree()):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])
            if i == 0:
                ticks += int(fields[13]) + int(fields[14])  # cutime + cstime: reaped children
        return ticks / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        family = self.tree()[1:]  # granian's workers: stopped with their parent, checked after
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        for pid in family:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# Twisted listens with a backlog of 50 by default: when hundreds of clients connect at once to a
# busy daphne, the kernel's accept queue overflows and connections are reset. An explicit
# endpoint with a deeper backlog (what uvicorn uses by default) avoids that.
LISTEN_BACKLOG = 2048


def daphne_argv(port: int, app: str) -> list[str]:
    endpoint = f"tcp:port={port}:interface=127.0.0.1:backlog={LISTEN_BACKLOG}"
    return [PYTHON, "-m", "daphne", "-v", "0", "-e", endpoint, app]


# The ASGI servers the benchmark runs things under, with the options the live tests use
# (tests/support/processes.py server_argv) plus the same listen backlog for each.
SERVERS = ("daphne", "uvicorn", "granian")


def server_argv(server: str, port: int, app: str) -> list[str]:
    if server == "daphne":
        return daphne_argv(port, app)
    if server == "uvicorn":
        return [
            PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log",
            "--log-level", "warning", "--backlog", str(LISTEN_BACKLOG),
        ]  # fmt: skip
    if server == "granian":
        return [
            PYTHON, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
            "--port", str(port), "--loop", "uvloop", "--no-ws", "--log-level", "warning",
            "--backlog", str(LISTEN_BACKLOG), app,
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}")


def start_process(
    name: str, argv: list[str], *, env: dict, cpu: str | None, log_dir: Path
) -> Process:
    if cpu is not None and pinning_enabled():
        # taskset execs the command, so the PID we hold is the server's own.
        argv = ["taskset", "-c", cpu, *argv]
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    popen = subprocess.Popen(
        argv,
        cwd=ROOT,
        # A None value removes the variable from the child's environment.
        env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    return Process(name, popen, log_path)


def wait_ready(process: Process, url: str, *, timeout: float = 60.0, headers=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        try:
            if httpx.get(url, timeout=2, headers=headers).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.stop()
    raise RuntimeError(f"{process.name} not ready after {timeout}s:\n{process.log_tail()}")


# The fake engine's behaviour (see bench/fake_engine.py): every model answers at once with 16
# tokens, the first one of a stream stamped with the engine's clock, except the paced model, which
# streams slowly to hold many streams open. The fast model's name avoids "llama-3": LiteLLM would
# fetch a Llama 3 tokenizer from the Hugging Face hub for it, and this machine has no internet.
FAST_MODEL = "microsoft/Phi-4-mini-instruct"
PACED_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
PACED_TOKENS_PER_SECOND = 1
ENGINE_MODEL_OVERRIDES = {
    PACED_MODEL: {"tokens_per_second": PACED_TOKENS_PER_SECOND, "tokens": 10_000}
}


def start_fake_engine(log_dir: Path) -> tuple[Process, str]:
    """The fake engine; returns the process and its base URL (…/v1)."""
    port = free_port()
    env = {
        "FAKE_ENGINE_TOKENS": "64",  # requests cap it with max_tokens
        "FAKE_ENGINE_STAMP": "1",
        "FAKE_ENGINE_DELAY_MS": "0",
        "FAKE_ENGINE_TOKENS_PER_SECOND": "0",
        "FAKE_ENGINE_MODEL_OVERRIDES": json.dumps(ENGINE_MODEL_OVERRIDES),
    }
    process = start_process(
        "fake-engine",
        daphne_argv(port, "bench.fake_engine:app"),
        env=env,
        cpu=CLIENT_CPU,
        log_dir=log_dir,
    )
    wait_ready(process, f"http://127.0.0.1:{port}/health")
    return process, f"http://127.0.0.1:{port}/v1"


@dataclass
class Target:
    """Something the load generator calls: its chat URL, headers, and the process behind it."""

    name: str
    base_url: str  # up to and including /v1
    headers: dict = field(default_factory=dict)
    process: Process | None = None
    seed: dict = field(default_factory=dict)
    cleanup: list = field(default_factory=list)
    # Concurrency slots the server still holds (None: not observable from outside).
    slots_held: Callable[[], int] | None = None

    @property
    def chat_url(self) -> str:
        return self.base_url + "/chat/completions"

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        for step in reversed(self.cleanup):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - cleanup must go on
                print(f"  cleanup of {self.name} failed: {exc}", file=sys.stderr)


def direct_target(engine: Process, engine_url: str) -> Target:
    return Target("direct", engine_url, process=None)


def _create_postgres_db() -> tuple[str, callable]:
    import psycopg

    name = "yardstick_bench_" + secrets.token_hex(4)
    with psycopg.connect(POSTGRES_ADMIN_URL + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(POSTGRES_ADMIN_URL + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{POSTGRES_ADMIN_URL}/{name}", drop


def _redis_cleanup(prefix: str):
    def clean() -> None:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)

    return clean


def _redis_slots_held(prefix: str):
    """Live user slots in the gateway's Redis counters (members whose lease has not expired)."""

    def held() -> int:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = client.scan_iter(match=f"{prefix}:conc:user:*", count=1000)
        return sum(client.zcount(key, time.time(), "+inf") for key in keys)

    return held


# A seeded gateway work directory (SQLite file + whatever else settings keep in the var dir) per
# engine URL: seeding (migrations) takes seconds, so the SQLite targets start from copies of one.
_SQLITE_TEMPLATES: dict[str, tuple[Path, dict]] = {}


def _seed(env: dict, engine_url: str, name: str) -> dict:
    seeded = subprocess.run(
        [PYTHON, "-m", "bench.seed_gateway", "--engine-url", engine_url],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    if seeded.returncode != 0:
        raise RuntimeError(f"seeding {name} failed:\n{seeded.stderr[-3000:]}")
    return json.loads(seeded.stdout.strip().splitlines()[-1])


# What each server runs for the gateway: daphne the whole product (pages, websockets and the API
# plane in one process); uvicorn and granian the API plane on its own (the scaled set-up).
GATEWAY_APPS = {
    "daphne": "inference_app.asgi:application",
    "uvicorn": "inference_app.api_asgi:application",
    "granian": "inference_app.api_asgi:application",
}


def gateway_target(
    name: str, engine_url: str, *, scaled: bool, log_dir: Path, server: str = "daphne"
) -> Target:
    """Our gateway: one server process (`server`), seeded DB (SQLite, or PostgreSQL + Redis)."""
    work = Path(tempfile.mkdtemp(prefix=f"yardstick-bench-{name}-"))
    target = Target(name, "", cleanup=[lambda: shutil.rmtree(work, ignore_errors=True)])
    env = {
        "YARDSTICK_VAR_DIR": str(work),
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "inference_app.settings",
    }
    try:
        if scaled:
            database_url, drop = _create_postgres_db()
            target.cleanup.append(drop)
            prefix = "bench-" + secrets.token_hex(4)
            env.update({"REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": prefix})
            target.cleanup.append(_redis_cleanup(prefix))
            target.slots_held = _redis_slots_held(prefix)
            env["DATABASE_URL"] = database_url
            target.seed = _seed(env, engine_url, name)
        else:
            env["DATABASE_URL"] = f"sqlite:///{work / 'bench.sqlite3'}"
            if engine_url not in _SQLITE_TEMPLATES:
                template = Path(tempfile.mkdtemp(prefix="yardstick-bench-template-"))
                seed = _seed(
                    {
                        **env,
                        "YARDSTICK_VAR_DIR": str(template),
                        "DATABASE_URL": f"sqlite:///{template / 'bench.sqlite3'}",
                    },
                    engine_url,
                    name,
                )
                _SQLITE_TEMPLATES[engine_url] = (template, seed)
            template, target.seed = _SQLITE_TEMPLATES[engine_url]
            shutil.copytree(template, work, dirs_exist_ok=True)
        port = free_port()
        target.process = start_process(
            name,
            server_argv(server, port, GATEWAY_APPS[server]),
            env=env,
            cpu=SERVER_CPU,
            log_dir=log_dir,
        )
        target.base_url = f"http://127.0.0.1:{port}/v1"
        target.headers = {
            "authorization": f"Bearer {target.seed['api_key']}",
            "openai-project": target.seed["project"],
        }
        wait_ready(target.process, target.base_url + "/models", headers=target.headers)
    except BaseException:
        target.stop()
        raise
    return target


def drop_templates() -> None:
    while _SQLITE_TEMPLATES:
        template, _ = _SQLITE_TEMPLATES.popitem()[1]
        shutil.rmtree(template, ignore_errors=True)


atexit.register(drop_templates)  # for callers that start gateways without dropping them


def relay_target(name: str, engine_url: str, *, server: str, log_dir: Path) -> Target:
    """The floor: bench/relay_floor.py (raw ASGI + httpx, no gateway work) under `server`."""
    port = free_port()
    process = start_process(
        name,
        server_argv(server, port, "bench.relay_floor:app"),
        env={"RELAY_ENGINE_URL": engine_url},
        cpu=SERVER_CPU,
        log_dir=log_dir,
    )
    target = Target(name, f"http://127.0.0.1:{port}/v1", process=process)
    try:
        wait_ready(process, f"http://127.0.0.1:{port}/health")
    except BaseException:
        target.stop()
        raise
    return target


def ensure_litellm() -> Path:
    """LiteLLM proxy in its own venv under bench/ (never a project dependency)."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        print("installing LiteLLM proxy into bench/.litellm-venv (once)...", file=sys.stderr)
        subprocess.run(["python3", "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run(
            [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True
        )
    return binary


def litellm_config(engine_url: str, models: list[str]) -> str:
    """config.yaml: each model routed to the fake engine, master key auth, extras off."""
    lines = ["model_list:"]
    for model in models:
        lines += [
            f"  - model_name: {model}",
            "    litellm_params:",
            f"      model: openai/{model}",
            f"      api_base: {engine_url}",
            "      api_key: fake-key",
        ]
    lines += [
        "litellm_settings:",
        "  set_verbose: false",
        "  json_logs: false",
        "  request_timeout: 600",
        "  num_retries: 0",
        "  telemetry: false",
        "general_settings:",
        f"  master_key: {MASTER_KEY}",
        "  disable_spend_logs: true",
        "  disable_error_logs: true",
    ]
    return "\n".join(lines) + "\n"


def litellm_target(engine_url: str, models: list[str], *, log_dir: Path) -> Target:
    binary = ensure_litellm()
    work = Path(tempfile.mkdtemp(prefix="yardstick-bench-litellm-"))
    config = work / "config.yaml"
    config.write_text(litellm_config(engine_url, models))
    port = free_port()
    env = {
        "LITELLM_LOG": "ERROR",
        "LITELLM_MODE": "PRODUCTION",
        # No network here: use the cost map bundled in the package instead of fetching it.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "DISABLE_ADMIN_UI": "True",
        "HF_HUB_OFFLINE": "1",
        # LiteLLM caps upstream connections at 500 per host by default; the many-streams
        # scenario needs 1000 open at once, as our gateway's engine client allows.
        "AIOHTTP_CONNECTOR_LIMIT": "4000",
        "AIOHTTP_CONNECTOR_LIMIT_PER_HOST": "4000",
    }
    for var in ("DATABASE_URL", "REDIS_URL"):
        env[var] = None  # LiteLLM without a database or Redis: nothing to write per request
    target = Target("litellm", f"http://127.0.0.1:{port}/v1")
    target.cleanup.append(lambda: shutil.rmtree(work, ignore_errors=True))
    argv = [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    target.process = start_process(
        "litellm", [*argv, "--num_workers", "1"], env=env, cpu=SERVER_CPU, log_dir=log_dir
    )
    target.headers = {"authorization": f"Bearer {MASTER_KEY}"}
    try:
        wait_ready(target.process, target.base_url + "/models", headers=target.headers, timeout=180)
    except BaseException:
        target.stop()
        raise
    return target
