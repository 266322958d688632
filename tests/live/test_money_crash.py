"""A gateway process killed with requests in flight loses no money and holds nothing for long.

Two daphne processes on PostgreSQL + Redis, as in a scaled deployment. One is killed with
SIGKILL (no clean-up runs in it: a crashed machine) right after answering requests whose usage
rows may still be waiting for their batch, and while streams are half sent. Within the sweep's
period every request that got an answer or a partial stream has exactly one usage row (`ok`,
`cancelled` or `lost`), no hold is left, the dead process's concurrency slots come back after
their lease, and every balance equals its ledger. A process stopped cleanly (SIGTERM) gives its
slots back at once.

The stack runs with short periods (lease, heartbeat, lost-after) to keep the test short.
"""

import asyncio
import json
import signal
import time

import httpx
import pytest

from tests.support.engines import start_fake_engine
from tests.support.processes import PYTHON, run_checked
from tests.support.stack import Stack
from tests.support.world import (
    FAKE_ENGINE_OVERRIDES,
    FAST_MODEL,
    SLOW_MODEL,
    fake_deployments,
)

pytestmark = pytest.mark.scaled

LEASE_SECONDS = 6
LOST_AFTER_SECONDS = 4
PROJECT_LIMIT = 10
HELLO = [{"role": "user", "content": "Keep talking."}]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, module_postgres_database, module_redis_url, module_redis_key_prefix):
    var_dir = tmp_path_factory.mktemp("money-crash")
    engine = start_fake_engine(var_dir=var_dir, model_overrides=FAKE_ENGINE_OVERRIDES)
    stack = Stack(
        database_url=module_postgres_database,
        var_dir=var_dir,
        redis_url=module_redis_url,
        redis_key_prefix=module_redis_key_prefix,
        env={
            "CONCURRENCY_LEASE_SECONDS": str(LEASE_SECONDS),
            "HOLDER_HEARTBEAT_SECONDS": "1",
            "LOST_AFTER_SECONDS": str(LOST_AFTER_SECONDS),
        },
    )
    try:
        stack.migrate()
        stack.seed(
            {
                "organizations": [{"slug": "crash", "plan": "free"}],
                "users": [{"username": "cal", "organization": "crash", "concurrency_limit": 64}],
                "teams": [{"name": "crash", "organization": "crash", "members": ["cal"]}],
                "projects": [
                    {"team": "crash", "name": "one", "concurrency_limit": PROJECT_LIMIT},
                    {"team": "crash", "name": "two", "concurrency_limit": 2},
                    {"team": "crash", "name": "answers", "concurrency_limit": 64},
                ],
                "deployments": fake_deployments(engine.base_url),
                "api_keys": [{"label": "cal", "user": "cal"}],
            }
        )
        stack.start_servers(2)
        yield stack
    finally:
        stack.stop()
        engine.stop()


def _headers(stack, project: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.api_keys['cal']}", "OpenAI-Project": project}


async def _open_streams(client, url, headers, count) -> list[tuple[str, object]]:
    """`count` streams, each read up to its first token and left open: (request id, (stream,
    its line iterator))."""
    opened = []
    for _ in range(count):
        context = client.stream(
            "POST",
            f"{url}/v1/chat/completions",
            headers=headers,
            json={"model": SLOW_MODEL, "messages": HELLO, "max_tokens": 200, "stream": True},
        )
        response = await context.__aenter__()
        assert response.status_code == 200
        lines = response.aiter_lines()
        async for line in lines:
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    break
        # The line iterator is kept: dropped, it would close the stream when collected.
        opened.append((response.headers["x-request-id"], (context, lines)))
    return opened


async def _answers(client, url, headers, count) -> list[str]:
    responses = await asyncio.gather(
        *(
            client.post(
                f"{url}/v1/chat/completions",
                headers=headers,
                json={"model": FAST_MODEL, "messages": HELLO, "max_tokens": 5},
            )
            for _ in range(count)
        )
    )
    assert [r.status_code for r in responses] == [200] * count
    return [r.headers["x-request-id"] for r in responses]


def _server_process(stack, url):
    return next(process for process, port in stack.servers if url.endswith(f":{port}"))


def _status(stack, url: str, project: str) -> int:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        headers=_headers(stack, project),
        json={"model": FAST_MODEL, "messages": HELLO, "max_tokens": 2},
        timeout=30,
    )
    return response.status_code


def test_a_killed_process_leaves_one_row_per_answered_request_and_nothing_held(stack):
    doomed_url, survivor_url = stack.urls
    headers = _headers(stack, "crash/one")

    async def load_then_crash() -> list[str]:
        async with httpx.AsyncClient(timeout=30) as client:
            streams = await _open_streams(client, doomed_url, headers, PROJECT_LIMIT)
            answered = await _answers(client, doomed_url, _headers(stack, "crash/answers"), 10)
            # At once, while the answered requests' rows may still wait for their batch.
            stack.crash_server(doomed_url)
            for _, (context, _lines) in streams:
                try:
                    await context.__aexit__(None, None, None)
                except Exception:
                    pass
            return [request_id for request_id, _ in streams] + answered

    request_ids = asyncio.run(load_then_crash())
    crashed_at = time.monotonic()
    assert len(set(request_ids)) == 2 * PROJECT_LIMIT

    # The dead process's slots (its 10 streams) are still taken, until their lease runs out.
    assert _status(stack, survivor_url, "crash/one") == 429
    while _status(stack, survivor_url, "crash/one") == 429:
        assert time.monotonic() - crashed_at < LEASE_SECONDS + 5, "slots never came back"
        time.sleep(0.25)

    # The sweep (Celery beat runs it every 30 s; here by hand once the holder is silent).
    time.sleep(max(0.0, LOST_AFTER_SECONDS + 1 - (time.monotonic() - crashed_at)))
    out = run_checked([PYTHON, "manage.py", "billing_jobs", "lost"], env=stack.env)
    assert "settled as lost" in out

    rows = stack.query(
        "SELECT request_id, status, prompt_tokens, cost_micros FROM billing_usagerecord"
        " WHERE request_id = ANY(%s)",
        (request_ids,),
    )
    by_id = {}
    for row in rows:
        by_id.setdefault(row["request_id"], []).append(row)
    assert sorted(by_id) == sorted(request_ids), "a request answered or streamed has no row"
    assert all(len(found) == 1 for found in by_id.values())
    statuses = {found[0]["status"] for found in by_id.values()}
    assert statuses <= {"ok", "cancelled", "lost"}
    # The streams were cut by the crash: nothing settled them but the sweep.
    assert {by_id[r][0]["status"] for r in request_ids[:PROJECT_LIMIT]} == {"lost"}
    assert all(by_id[r][0]["prompt_tokens"] > 0 for r in request_ids[:PROJECT_LIMIT])
    assert all(by_id[r][0]["cost_micros"] > 0 for r in request_ids[:PROJECT_LIMIT])

    assert stack.unsettled_requests() == 0
    assert stack.query("SELECT SUM(reserved_micros) AS held FROM billing_organization")[0][
        "held"
    ] in (0, None)
    run_checked([PYTHON, "manage.py", "billing_jobs", "check"], env=stack.env)


def test_a_cleanly_stopped_process_gives_its_slots_back_at_once(stack):
    """SIGTERM: the streams it was serving are settled and their slots released at exit, not
    after the lease."""
    live = [f"http://127.0.0.1:{port}" for process, port in stack.servers if process.poll() is None]
    if len(live) < 2:
        live += stack.start_servers(1)
    leaving_url, staying_url = live[-1], live[0]
    headers = _headers(stack, "crash/two")

    async def hold_two_then_stop() -> list[str]:
        async with httpx.AsyncClient(timeout=30) as client:
            streams = await _open_streams(client, leaving_url, headers, 2)
            process = _server_process(stack, leaving_url)
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 15)
            for _, (context, _lines) in streams:
                try:
                    await context.__aexit__(None, None, None)
                except Exception:
                    pass
            return [request_id for request_id, _ in streams]

    request_ids = asyncio.run(hold_two_then_stop())
    stopped_at = time.monotonic()
    assert _status(stack, staying_url, "crash/two") == 200
    assert time.monotonic() - stopped_at < LEASE_SECONDS / 2
    rows = stack.query(
        "SELECT status FROM billing_usagerecord WHERE request_id = ANY(%s)", (request_ids,)
    )
    assert sorted(row["status"] for row in rows) == ["cancelled", "cancelled"]
    stack.usage_rows()  # waits for the last request's row
    assert stack.unsettled_requests() == 0
