"""GET /healthz on a live daphne while its embedded engine is not listening yet, then is."""

import time

import httpx

from tests.support.processes import daphne_argv, free_port, start_process, stop_process
from tests.support.stack import Stack, sqlite_database_url


def healthz(stack: Stack) -> tuple[int, dict]:
    response = httpx.get(f"{stack.url}/healthz", timeout=10)
    return response.status_code, response.json()


def wait_for_healthz(stack: Stack, status: int, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        code, body = healthz(stack)
        if code == status or time.monotonic() > deadline:
            assert code == status, body
            return body
        time.sleep(0.2)


def test_healthz_is_starting_until_the_embedded_engine_answers_then_down_when_it_stops(
    tmp_path,
):
    engine_port = free_port()
    stack = Stack(
        database_url=sqlite_database_url(tmp_path),
        var_dir=tmp_path,
        embedded_engine_url=f"http://127.0.0.1:{engine_port}/v1",
    )
    engine = None
    try:
        stack.migrate()
        stack.seed({"embedded_deployment": True})
        stack.start_servers(1)

        code, body = healthz(stack)
        assert code == 503, body
        assert body["status"] == "starting"
        assert body["deployments"]["embedded-llamacpp"]["state"] == "starting", body

        # The engine comes up on its port (bench's fake engine standing in for llama.cpp).
        engine = start_process(
            daphne_argv("bench.fake_engine:app", engine_port),
            env=stack.env,
            log_path=tmp_path / "fake-engine.log",
        )
        body = wait_for_healthz(stack, 200)
        assert body["status"] == "ok"
        assert body["deployments"]["embedded-llamacpp"]["state"] == "ok", body

        stop_process(engine)
        code, body = healthz(stack)
        assert code == 200, body
        assert body["deployments"]["embedded-llamacpp"]["state"] == "down", body
    finally:
        if engine is not None:
            stop_process(engine)
        stack.stop()
