"""Engines that are down, fail, or die mid-stream, behind a live daphne.

A model with two deployments, one of them down, keeps answering (the gateway tries another
healthy deployment first). An engine's 500 and 503 reach the client as InternalServerError in
our error shape; a failure after the stream started arrives as an error event (the openai client
raises) and is recorded as one usage row with status error. Every path gives its slot back.
"""

import openai
import pytest

from tests.support.clients import create_once_a_slot_is_free, openai_client
from tests.support.engines import start_broken_engine
from tests.support.stack import CLOSED_ENGINE_URL
from tests.support.world import FAST_MODEL, SOLO_PROJECT

HELLO = [{"role": "user", "content": "Say hello."}]
FAILOVER_MODEL = "test/failover"


@pytest.fixture(scope="module")
def broken_engine(tmp_path_factory):
    engine = start_broken_engine(var_dir=tmp_path_factory.mktemp("broken-engine"))
    yield engine
    engine.stop()


# Each failing case gets a model (and a deployment) of its own: after a failure the gateway
# may rest a deployment for a while, and one case must not see another's aftermath.
FAILING_CASES = {
    "fail-500-plain": "fail-500",
    "fail-500-stream": "fail-500",
    "fail-503-plain": "fail-503",
    "fail-503-stream": "fail-503",
    "error-midstream": "error-midstream",
    "die-midstream": "die-midstream",
}


@pytest.fixture(scope="module")
def stack(sqlite_stack, fake_engine, broken_engine):
    """The package's stack, plus models whose engines misbehave."""
    sqlite_stack.seed(
        {
            "models": [{"model_id": FAILOVER_MODEL}]
            + [{"model_id": f"test/{case}"} for case in FAILING_CASES],
            "deployments": [
                {"name": "failover-down", "model": FAILOVER_MODEL, "base_url": CLOSED_ENGINE_URL},
                {"name": "failover-up", "model": FAILOVER_MODEL, "base_url": fake_engine.base_url},
            ]
            + [
                {
                    "name": f"broken-{case}",
                    "model": f"test/{case}",
                    "base_url": broken_engine.base_url,
                    "upstream_model": behaviour,
                }
                for case, behaviour in FAILING_CASES.items()
            ],
        }
    )
    return sqlite_stack


@pytest.fixture
def solo(stack):
    """acme/solo allows one request at a time: a leaked slot fails the next test's request."""
    client = openai_client(stack.url, stack.api_keys["alice"], SOLO_PROJECT, max_retries=0)
    yield client
    assert create_once_a_slot_is_free(client, model=FAST_MODEL, messages=HELLO, max_tokens=2)


def test_a_down_deployment_is_skipped_for_a_healthy_one(stack, solo):
    before = stack.usage_rows()
    for _ in range(4):
        completion = solo.chat.completions.create(model=FAILOVER_MODEL, messages=HELLO)
        assert completion.choices[0].message.content
    rows = stack.usage_rows_since(before, expect=4)
    assert [row["deployment"] for row in rows] == ["failover-up"] * 4
    assert all(row["status"] == "ok" for row in rows)


@pytest.mark.parametrize(
    "case, status, code",
    [
        ("fail-500-plain", 500, "server_error"),
        ("fail-500-stream", 500, "server_error"),
        ("fail-503-plain", 503, "engine_overloaded"),
        ("fail-503-stream", 503, "engine_overloaded"),
    ],
)
def test_engine_errors_are_internal_server_errors_and_cost_nothing(stack, solo, case, status, code):
    stream = case.endswith("-stream")
    model = f"test/{case}"
    before = stack.usage_rows()
    with pytest.raises(openai.InternalServerError) as caught:
        result = solo.chat.completions.create(model=model, messages=HELLO, stream=stream)
        if stream:
            list(result)
    assert caught.value.status_code == status
    error = caught.value.response.json()["error"]
    assert error["code"] == code and set(error) == {"message", "type", "param", "code"}
    assert stack.usage_rows_since(before, timeout=0.3) == []


@pytest.mark.parametrize("model", ["test/error-midstream", "test/die-midstream"])
def test_failure_after_the_stream_started_is_an_error_event_and_one_usage_row(stack, solo, model):
    before = stack.usage_rows()
    stream = solo.chat.completions.create(model=model, messages=HELLO, stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.extend(c.delta.content for c in chunk.choices if c.delta.content)
    assert not isinstance(caught.value, openai.APIConnectionError)  # an error event, not a cut
    assert len(received) == 3  # the tokens sent before the failure reached the client
    [row] = stack.usage_rows_since(before, expect=1)
    assert row["status"] == "error" and row["error_code"] == "server_error"
    assert row["completion_tokens"] >= 3 and row["tokens_counted_by_gateway"]
