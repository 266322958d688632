"""Engines a live stack talks to: the real embedded llama.cpp engine, bench's fake engine and
a deliberately broken one (tests/support/broken_engine.py)."""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import httpx

from tests.support.processes import (
    PYTHON,
    daphne_argv,
    free_port,
    start_process,
    stop_process,
    wait_until_answers,
)


@dataclass
class EngineProcess:
    process: Popen
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        """What a Deployment's base_url holds: up to and including /v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)


def _start_engine(
    name: str, argv_for_port, *, var_dir: Path, env: dict[str, str], timeout: float = 60
) -> EngineProcess:
    """Start `argv_for_port(port)` on a free port; ready when GET /health answers 200."""
    port = free_port()
    log_path = var_dir / f"{name}-{port}.log"
    process = start_process(argv_for_port(port), env=env, log_path=log_path)
    wait_until_answers(
        f"http://127.0.0.1:{port}/health",
        process=process,
        log_path=log_path,
        timeout=timeout,
        ok_only=True,
    )
    return EngineProcess(process=process, port=port, log_path=log_path)


def start_embedded_engine(*, var_dir: Path) -> EngineProcess:
    """`manage.py run_engine`: SmolLM2 on llama.cpp, the product's own embedded engine, with
    its default settings."""
    env = {**os.environ, "YARDSTICK_VAR_DIR": str(var_dir)}
    env.pop("DATABASE_URL", None)
    return _start_engine(
        "embedded-engine",
        lambda port: [PYTHON, "manage.py", "run_engine", "--port", str(port)],
        var_dir=var_dir,
        env=env,
        timeout=120,
    )


def start_fake_engine(
    *, var_dir: Path, model_overrides: dict | None = None, **config: str | int | float
) -> EngineProcess:
    """bench/fake_engine.py under daphne. `config` keys are its FAKE_ENGINE_* settings,
    lower-case without the prefix (delay_ms, tokens, tokens_per_second, no_usage)."""
    env = {**os.environ}
    env.update({f"FAKE_ENGINE_{key.upper()}": str(value) for key, value in config.items()})
    if model_overrides:
        env["FAKE_ENGINE_MODEL_OVERRIDES"] = json.dumps(model_overrides)
    return _start_engine(
        "fake-engine",
        lambda port: daphne_argv("bench.fake_engine:app", port),
        var_dir=var_dir,
        env=env,
    )


def start_broken_engine(*, var_dir: Path) -> EngineProcess:
    """tests/support/broken_engine.py: fails in the way the requested model name says."""
    return _start_engine(
        "broken-engine",
        lambda port: [PYTHON, "-m", "tests.support.broken_engine", str(port)],
        var_dir=var_dir,
        env={**os.environ},
    )


def fake_engine_stats(engine: EngineProcess) -> dict:
    """{"in_flight", "max_concurrent", "total_requests", "completed", "cancelled_streams", "streams"}"""
    return httpx.get(f"{engine.root_url}/stats", timeout=5).json()


def fake_engine_reset(engine: EngineProcess) -> dict:
    return httpx.post(f"{engine.root_url}/stats/reset", timeout=5).json()
