"""The processes a benchmark run starts: the fake engine, our gateway, LiteLLM proxy.

Every process is started here, pinned with `taskset` when the machine has two or more cores,
and stopped by its own PID. Ports are picked free on 127.0.0.1; nothing listens elsewhere.
"""

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

    def rss_mb(self) -> float | None:
        """Resident memory from /proc (the process and its threads; children not included)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


# Twisted listens with a backlog of 50 by default: when hundreds of clients connect at once to a
# busy daphne, the kernel's accept queue overflows and connections are reset. An explicit
# endpoint with a deeper backlog (what uvicorn uses by default) avoids that.
LISTEN_BACKLOG = 2048


def daphne_argv(port: int, app: str) -> list[str]:
    endpoint = f"tcp:port={port}:interface=127.0.0.1:backlog={LISTEN_BACKLOG}"
    return [PYTHON, "-m", "daphne", "-v", "0", "-e", endpoint, app]


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


def gateway_target(name: str, engine_url: str, *, scaled: bool, log_dir: Path) -> Target:
    """Our gateway: one daphne process, seeded DB (SQLite, or PostgreSQL + Redis when scaled)."""
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
        else:
            database_url = f"sqlite:///{work / 'bench.sqlite3'}"
        env["DATABASE_URL"] = database_url
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
        target.seed = json.loads(seeded.stdout.strip().splitlines()[-1])
        port = free_port()
        target.process = start_process(
            name,
            daphne_argv(port, "inference_app.asgi:application"),
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
