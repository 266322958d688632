"""A database outage longer than any give-up delay loses no usage row and stalls no other row.

The gateway talks to PostgreSQL through a TCP proxy the test switches off: every connection is
cut and new ones are refused, as in a failover. Streams admitted before the outage finish
during it, so their usage rows cannot be written; they are retried (with back-off) until the
database is back, then written, once each. Requests arriving during the outage are refused in
OpenAI's error shape and charge nothing. Once the database is back, a new request's row is
written at once, whatever back-off the old ones are in.
"""

import asyncio
import json
import time
from urllib.parse import urlparse

import httpx
import pytest

from tests.support.engines import start_fake_engine
from tests.support.processes import PYTHON, run_checked
from tests.support.stack import Stack
from tests.support.tcp_proxy import TcpProxy
from tests.support.world import (
    FAKE_ENGINE_OVERRIDES,
    FAST_MODEL,
    SLOW_MODEL,
    fake_deployments,
)

# serial: it times an outage in seconds; make test runs it after the parallel run, alone.
pytestmark = [pytest.mark.scaled, pytest.mark.serial]

OUTAGE_SECONDS = 9  # longer than the old code's give-up (about 6 s)
STREAMS = 5
HELLO = [{"role": "user", "content": "Keep talking."}]


@pytest.fixture
def stack(tmp_path, fresh_postgres_database):
    target = urlparse(fresh_postgres_database)
    proxy = TcpProxy(target_port=target.port)
    engine = start_fake_engine(var_dir=tmp_path, model_overrides=FAKE_ENGINE_OVERRIDES)
    proxied_url = fresh_postgres_database.replace(f":{target.port}/", f":{proxy.port}/")
    stack = Stack(database_url=proxied_url, var_dir=tmp_path)
    stack.proxy = proxy
    try:
        stack.migrate()
        stack.seed(
            {
                "organizations": [{"slug": "outage", "plan": "pro"}],
                "users": [{"username": "olga", "organization": "outage"}],
                "teams": [{"name": "outage", "organization": "outage", "members": ["olga"]}],
                "projects": [{"team": "outage", "name": "one", "concurrency_limit": 32}],
                "deployments": fake_deployments(engine.base_url),
                "api_keys": [{"label": "olga", "user": "olga"}],
            }
        )
        stack.start_servers(1)
        yield stack
    finally:
        stack.stop()
        engine.stop()
        proxy.close()


def test_rows_finished_during_an_outage_are_written_once_it_ends(stack):
    url = stack.url
    headers = {"Authorization": f"Bearer {stack.api_keys['olga']}", "OpenAI-Project": "outage/one"}

    async def streams_across_an_outage() -> tuple[list[str], list[httpx.Response]]:
        async with httpx.AsyncClient(timeout=60) as client:
            opened = []
            for _ in range(STREAMS):
                context = client.stream(
                    "POST",
                    f"{url}/v1/chat/completions",
                    headers=headers,
                    json={"model": SLOW_MODEL, "messages": HELLO, "max_tokens": 30, "stream": True},
                )
                response = await context.__aenter__()
                assert response.status_code == 200
                opened.append((response, context))
            stack.proxy.stop()  # the database goes away
            outage_began = time.monotonic()
            request_ids = []
            for response, context in opened:  # each stream is read to its end
                data = [line async for line in response.aiter_lines() if line.startswith("data:")]
                assert data[-1] == "data: [DONE]"
                request_ids.append(json.loads(data[0][6:])["id"])
                await context.__aexit__(None, None, None)
            # Requests during the outage: refused in our shape (the key is still cached).
            refused = [
                await client.post(
                    f"{url}/v1/chat/completions",
                    headers=headers,
                    json={"model": FAST_MODEL, "messages": HELLO, "max_tokens": 2},
                )
                for _ in range(3)
            ]
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_began)))
            stack.proxy.start()
            return request_ids, refused

    request_ids, refused = asyncio.run(streams_across_an_outage())
    back_at = time.monotonic()
    for response in refused:
        assert response.status_code >= 500
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}

    # A request after the outage: its row is written at once, not behind the back-off.
    fresh = httpx.post(
        f"{url}/v1/chat/completions",
        headers=headers,
        json={"model": FAST_MODEL, "messages": HELLO, "max_tokens": 2},
        timeout=30,
    )
    assert fresh.status_code == 200
    fresh_id = fresh.headers["x-request-id"]
    while not stack.query("SELECT 1 FROM billing_usagerecord WHERE request_id = %s", (fresh_id,)):
        assert time.monotonic() - back_at < 5, "a new row waited behind the old ones"
        time.sleep(0.1)

    # The rows of the outage: retried with back-off (at most 30 s apart), then written once.
    deadline = back_at + 45
    while True:
        rows = stack.query(
            "SELECT request_id, status, completion_tokens FROM billing_usagerecord"
            " WHERE request_id = ANY(%s)",
            (request_ids,),
        )
        if len(rows) == STREAMS or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(row["request_id"] for row in rows) == sorted(request_ids)
    assert {row["status"] for row in rows} == {"ok"}
    assert all(row["completion_tokens"] == 30 for row in rows)
    assert stack.unsettled_requests() == 0
    assert len(stack.usage_rows()) == STREAMS + 1  # the refused ones charged nothing
    run_checked([PYTHON, "manage.py", "billing_jobs", "check"], env=stack.env)
