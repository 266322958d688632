"""Through the view to the real embedded engine (llama.cpp serving SmolLM2): real text, real
usage, streamed and not. Structure is asserted, never wording."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from billing.models import UsageRecord
from inference_app.catalog_seed import EMBEDDED_MODEL_ID
from inference_app.gateway import engine_client, settlement
from inference_app.models import CatalogModel, Deployment
from tests.support.engines import start_embedded_engine

pytestmark = pytest.mark.engine

MODEL = "test/smollm2"


@pytest.fixture(scope="module")
def engine_url(tmp_path_factory):
    engine = start_embedded_engine(var_dir=tmp_path_factory.mktemp("embedded-engine"))
    yield engine.base_url
    engine.stop()


@pytest.fixture
def real_engine(world, engine_url):
    engine_client.install_transport(None)  # the fake engine out of the way: real HTTP
    model = CatalogModel.objects.create(
        model_id=MODEL,
        display_name="SmolLM2",
        context_window=8192,
        total_params_b="0.135",
        description="-",
        input_price_micros=10_000,
        output_price_micros=20_000,
    )
    Deployment.objects.create(
        model=model, name="embedded", base_url=engine_url, upstream_model=EMBEDDED_MODEL_ID
    )
    return engine_url


MESSAGES = [{"role": "user", "content": "Name three colours."}]


async def test_real_engine_non_streamed_and_streamed(world, real_engine):
    client = AsyncClient()
    response = await client.post(
        "/v1/chat/completions",
        data=json.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": 16}),
        content_type="application/json",
        headers=world.headers(),
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == MODEL and body["id"] == response["x-request-id"]
    assert body["choices"][0]["message"]["content"].strip()
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 16
    # In-memory SQLite (tests only) locks whole tables across threads: let the first row be
    # written before the next request reserves. (A file database just waits its turn.)
    await settlement.drain()

    response = await client.post(
        "/v1/chat/completions",
        data=json.dumps(
            {
                "model": MODEL,
                "messages": MESSAGES,
                "max_tokens": 16,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ),
        content_type="application/json",
        headers=world.headers(),
    )
    assert response.status_code == 200
    raw = b"".join([part async for part in response.streaming_content]).decode()
    events = [e.removeprefix("data: ") for e in raw.strip().split("\n\n")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.strip()
    assert chunks[-1]["choices"] == []
    stream_usage = chunks[-1]["usage"]
    assert stream_usage["prompt_tokens"] > 0 and 0 < stream_usage["completion_tokens"] <= 16

    await settlement.drain()
    records = await sync_to_async(lambda: list(UsageRecord.objects.order_by("pk")))()
    assert [r.status for r in records] == ["ok", "ok"]
    assert [r.completion_tokens for r in records] == [
        usage["completion_tokens"],
        stream_usage["completion_tokens"],
    ]
    # The engine reported usage itself: nothing was estimated.
    assert not any(r.tokens_counted_by_gateway for r in records)
    assert records[1].time_to_first_token_ms is not None
    assert all(r.deployment == "embedded" and r.cost_micros > 0 for r in records)
