"""One tenant's bad requests never fail another tenant's, behind a live daphne.

The picky engine answers 500 to any request carrying a `grammar` (as llama.cpp does to one it
cannot parse). acme sends such requests in a loop, streamed and not; rival, another
organization, asks the same model in between and is always served. The deployment stays in
rotation, in the gateway's memory and in the database.
"""

import openai
import pytest

from tests.support.clients import openai_client
from tests.support.picky_engine import start_picky_engine
from tests.support.world import MAIN_PROJECT, RIVAL_PROJECT

PICKY_MODEL = "test/picky"
HELLO = [{"role": "user", "content": "Say hello."}]
BAD_GRAMMAR = {"grammar": "root ::= ("}


@pytest.fixture(scope="module")
def picky_engine(tmp_path_factory):
    engine = start_picky_engine(var_dir=tmp_path_factory.mktemp("picky-engine"))
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def stack(sqlite_stack, picky_engine):
    sqlite_stack.seed(
        {
            "models": [{"model_id": PICKY_MODEL}],
            "deployments": [
                {"name": "picky", "model": PICKY_MODEL, "base_url": picky_engine.base_url}
            ],
        }
    )
    return sqlite_stack


def test_one_tenants_bad_requests_never_fail_another_tenants(stack):
    acme = openai_client(stack.url, stack.api_keys["alice"], MAIN_PROJECT, max_retries=0)
    rival = openai_client(stack.url, stack.api_keys["bob"], RIVAL_PROJECT, max_retries=0)
    before = stack.usage_rows()
    for attempt in range(8):
        with pytest.raises(openai.InternalServerError) as caught:
            acme.chat.completions.create(
                model=PICKY_MODEL, messages=HELLO, stream=attempt % 2 == 1, extra_body=BAD_GRAMMAR
            )
        error = caught.value.response.json()["error"]
        assert caught.value.status_code == 500
        assert error["code"] == "server_error" and error["message"] == "failed to parse grammar"
        completion = rival.chat.completions.create(model=PICKY_MODEL, messages=HELLO)
        assert completion.choices[0].message.content
    [row] = stack.query(
        "SELECT is_healthy, last_error FROM inference_app_deployment WHERE name = 'picky'"
    )
    assert row["is_healthy"] and not row["last_error"]
    # Only rival's requests were answered, so only they left usage rows.
    rows = stack.usage_rows_since(before, expect=8)
    assert len(rows) == 8 and all(r["status"] == "ok" and r["team"] == "rival" for r in rows)
