"""Engines a live stack talks to: the real embedded llama.cpp engine and bench's fake engine."""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import httpx

from tests.support.processes import (
    PYTHON,
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


def start_embedded_engine(*, var_dir: Path, parallel: int = 4) -> EngineProcess:
    """`manage.py run_engine` (SmolLM2 on llama.cpp), ready when GET /health answers 200."""
    port = free_port()
    log_path = var_dir / "embedded-engine.log"
    env = {**os.environ, "YARDSTICK_VAR_DIR": str(var_dir)}
    env.pop("DATABASE_URL", None)
    process = start_process(
        [
            PYTHON,
            "manage.py",
            "run_engine",
            "--port",
            str(port),
            "--parallel",
            str(parallel),
            "--context",
            "4096",
        ],
        env=env,
        log_path=log_path,
    )
    wait_until_answers(
        f"http://127.0.0.1:{port}/health",
        process=process,
        log_path=log_path,
        timeout=120,
        ok_only=True,
    )
    return EngineProcess(process=process, port=port, log_path=log_path)


def start_fake_engine(
    *, var_dir: Path, model_overrides: dict | None = None, **config: str | int | float
) -> EngineProcess:
    """bench/fake_engine.py under daphne. `config` keys are its FAKE_ENGINE_* settings, lower-case
    without the prefix (delay_ms, tokens, tokens_per_second, no_usage)."""
    port = free_port()
    log_path = var_dir / f"fake-engine-{port}.log"
    env = {**os.environ}
    for key, value in config.items():
        env[f"FAKE_ENGINE_{key.upper()}"] = str(value)
    if model_overrides:
        env["FAKE_ENGINE_MODEL_OVERRIDES"] = json.dumps(model_overrides)
    process = start_process(
        [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "bench.fake_engine:app"],
        env=env,
        log_path=log_path,
    )
    wait_until_answers(
        f"http://127.0.0.1:{port}/health", process=process, log_path=log_path, ok_only=True
    )
    return EngineProcess(process=process, port=port, log_path=log_path)


def fake_engine_stats(engine: EngineProcess) -> dict:
    """{"in_flight", "max_concurrent", "total_requests", "completed", "cancelled_streams", "streams"}"""
    return httpx.get(f"{engine.root_url}/stats", timeout=5).json()


def fake_engine_reset(engine: EngineProcess) -> dict:
    return httpx.post(f"{engine.root_url}/stats/reset", timeout=5).json()
