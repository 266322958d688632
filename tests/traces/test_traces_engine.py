"""One call through the REAL embedded engine (SmolLM2 on llama.cpp), found on the Traces page in
Chromium with its answer, tokens, cost and timings, then opened in the Playground.

A real model: the test compares the page with what the API answered and what the ledger
charged, never with expected wording.
"""

import re
import time

import pytest

from tests.support.clients import openai_client
from tests.support.engines import start_embedded_engine
from tests.support.stack import Stack, sqlite_database_url
from tests.support.world import EMBEDDED_MODEL, MAIN_PROJECT, standard_world

pytestmark = [pytest.mark.engine, pytest.mark.browser]

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
QUESTION = "Name three colours."


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    engine = start_embedded_engine(var_dir=tmp_path_factory.mktemp("traces-engine"))
    var_dir = tmp_path_factory.mktemp("traces-engine-stack")
    live = Stack(
        database_url=sqlite_database_url(var_dir),
        var_dir=var_dir,
        embedded_engine_url=engine.base_url,
    )
    try:
        live.migrate()
        live.seed(standard_world(fake_engine_url=None, embedded=True))
        live.start_servers(1)
        yield live
    finally:
        live.stop()
        engine.stop()


def _call_row(stack, request_id: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        rows = stack.query("SELECT * FROM traces_call WHERE request_id = %s", (request_id,))
        if rows or time.monotonic() > deadline:
            assert len(rows) == 1, f"{len(rows)} call rows for {request_id}"
            return rows[0]
        time.sleep(0.1)


def test_a_real_call_on_the_traces_page_and_back_in_the_playground(
    stack, chromium_executable, artifacts_dir
):
    from playwright.sync_api import expect, sync_playwright

    client = openai_client(stack.url, stack.api_keys["alice"], MAIN_PROJECT)
    completion = client.chat.completions.create(
        model=EMBEDDED_MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": QUESTION},
        ],
        max_tokens=24,
        temperature=0.2,
    )
    answer = completion.choices[0].message.content
    assert answer.strip()
    call = _call_row(stack, completion.id)
    [charge] = stack.query(
        "SELECT amount_micros FROM billing_ledgerentry WHERE request_id = %s", (completion.id,)
    )
    assert call["cost_micros"] == -charge["amount_micros"] > 0
    assert (call["prompt_tokens"], call["completion_tokens"]) == (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
    )
    assert call["ttft_ms"] is not None and 0 < call["ttft_ms"] <= call["duration_ms"]
    assert call["deployment"] == "embedded-llamacpp" and call["source"] == "api"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(15_000)
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(f"{stack.url}/accounts/login/?next=/traces/")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", "live-test-password")
            page.click("button[type=submit]")
            page.wait_for_url(f"{stack.url}/traces/")
            row = page.locator("tr.trace-row").first
            expect(row).to_contain_text(EMBEDDED_MODEL)
            total = completion.usage.prompt_tokens + completion.usage.completion_tokens
            page.screenshot(path=str(artifacts_dir / "traces-engine-list.png"), full_page=True)

            row.click()
            page.wait_for_url(f"**/traces/{call['span_id']}")
            expect(page.get_by_test_id("call-status")).to_have_text("OK")
            expect(page.get_by_test_id("call-tokens")).to_contain_text(str(total))
            cost = page.get_by_test_id("call-cost").inner_text()
            assert cost.startswith("$") and float(cost.lstrip("$")) * 1e6 == pytest.approx(
                call["cost_micros"], abs=1
            )
            conversation = page.get_by_test_id("conversation")
            expect(conversation).to_contain_text(QUESTION)
            # The answer as the page renders it (Markdown): compare a word, not markup (a list's
            # "1." becomes the <ol>'s numbering, which is no text).
            first_word = re.findall(r"[^\W\d_]{2,}", answer)[0]
            expect(conversation).to_contain_text(first_word)
            page.screenshot(path=str(artifacts_dir / "traces-engine-call.png"), full_page=True)

            page.get_by_test_id("open-in-playground").click()
            page.wait_for_url("**/playground/?from_call=*")
            expect(page.locator("#system-prompt")).to_have_value("Be brief.")
            expect(page.locator(".msg-user .msg-content").first).to_contain_text(QUESTION)
            assert errors == []
        finally:
            browser.close()
