"""The Playground's answers in Chromium: each labelled with its model, Retry keeping versions
(‹1/3›), Escape stopping, code blocks highlighted (and still inert), JSON mode / JSON schema
sent as response_format, n samples shown as versions.

The engine is `engine` below (an ASGI app run by daphne): it numbers its answers, answers a
message containing "slow" slowly, and lists the requests it received at /requests."""

import asyncio
import json
import urllib.request

import pytest
from playwright.sync_api import expect

from playground.chat_requests import PlaygroundRequestError, chat_body_build
from tests.support.engines import EngineProcess
from tests.support.processes import PYTHON, free_port, start_process, wait_until_answers
from tests.support.stack import CLOSED_ENGINE_URL, Stack, sqlite_database_url

FIRST = "deepseek-ai/DeepSeek-V3-0324"
SECOND = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
PASSWORD = "live-test-password"
CODE = "```python\nprint('<script>window.__pwned=1</script>')\n```\n"

# ---- the engine (runs in its own process) -------------------------------------------------
_received: list[dict] = []


def _chunk(choices, usage=None) -> bytes:
    body = {"id": "chatcmpl-polish", "object": "chat.completion.chunk", "created": 0}
    body |= {"model": "polish", "choices": choices}
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n".encode()


def _last_user_text(request: dict) -> str:
    users = [m for m in request.get("messages", []) if m.get("role") == "user"]
    content = users[-1]["content"] if users else ""
    return content if isinstance(content, str) else json.dumps(content)


async def engine(scope, receive, send):
    if scope["type"] != "http":
        return
    raw = b""
    while True:
        message = await receive()
        raw += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = [(b"content-type", b"application/json")]
    if scope["path"].endswith("/chat/completions"):
        request = json.loads(raw)
        _received.append(request)
        number = len(_received)
        if "slow" in _last_user_text(request):
            chunks, delay = ["tick "] * 300, 0.05
        else:
            chunks, delay = [f"Answer {number}. ", "Some code:\n\n", CODE], 0
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for text in chunks:
            choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
            await send({"type": "http.response.body", "body": _chunk([choice]), "more_body": True})
            await asyncio.sleep(delay)
        usage = {"prompt_tokens": 5, "completion_tokens": len(chunks)}
        usage["total_tokens"] = 5 + len(chunks)
        tail = _chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]) + _chunk([], usage)
        await send({"type": "http.response.body", "body": tail + b"data: [DONE]\n\n"})
        return
    body = json.dumps(_received if scope["path"] == "/requests" else {"status": "ok"})
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})


# ---- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def polish_engine(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("polish-engine")
    port = free_port()
    log_path = var_dir / "engine.log"
    argv = [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    process = start_process(
        [*argv, "tests.playground.test_playground_polish:engine"], env={}, log_path=log_path
    )
    wait_until_answers(
        f"http://127.0.0.1:{port}/health", process=process, log_path=log_path, ok_only=True
    )
    engine_process = EngineProcess(process=process, port=port, log_path=log_path)
    yield engine_process
    engine_process.stop()


def received(engine_process) -> list[dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{engine_process.port}/requests") as response:
        return json.load(response)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, polish_engine):
    var_dir = tmp_path_factory.mktemp("polish-stack")
    live = Stack(
        database_url=sqlite_database_url(var_dir),
        var_dir=var_dir,
        embedded_engine_url=CLOSED_ENGINE_URL,
    )
    live.migrate()
    live.seed(
        {
            "organizations": [{"slug": "acme", "plan": "free"}],
            "users": [{"username": "alice", "organization": "acme", "role": "admin"}],
            "teams": [{"name": "acme", "organization": "acme", "members": ["alice"]}],
            "projects": [{"team": "acme", "name": "main", "default_for": ["alice"]}],
            "deployments": [
                {"name": "first", "model": FIRST, "base_url": polish_engine.base_url},
                {"name": "second", "model": SECOND, "base_url": polish_engine.base_url},
            ],
        }
    )
    live.start_servers(1)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser(chromium_executable):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=stack.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto("/accounts/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inference/")
    yield page
    context.close()


def send(page, text):
    page.fill("#prompt", text)
    page.keyboard.press("Enter")


def wait_idle(page):
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator(".msg-assistant.streaming")).to_have_count(0)


def model_name(page, model_id):
    return page.locator(f'[data-model-select] option[value="{model_id}"]').inner_text()


# ---- tests ----------------------------------------------------------------------------------
@pytest.mark.browser
def test_answers_name_their_model_and_retry_keeps_versions(page, polish_engine, artifacts_dir):
    page.goto(f"/playground/?model={FIRST}")
    send(page, "hello")
    wait_idle(page)
    page.select_option("[data-model-select]", SECOND)
    send(page, "and you?")
    wait_idle(page)
    answers = page.locator(".msg-assistant")
    expect(answers.nth(0).locator(".msg-model")).to_have_text(model_name(page, FIRST))
    expect(answers.nth(1).locator(".msg-model")).to_have_text(model_name(page, SECOND))
    assert received(polish_engine)[-1]["model"] == SECOND

    # Code blocks: highlighted, their language shown, the <script> inside them plain text.
    block = answers.nth(0).locator(".code-block")
    expect(block.locator(".code-lang")).to_have_text("python")
    assert block.locator("code.hljs span[class^='hljs-']").count() >= 2
    assert "<script>window.__pwned=1</script>" in block.locator("code").inner_text()
    assert block.locator("script").count() == 0
    assert page.evaluate("window.__pwned") is None

    # Retry twice: three versions of the second answer, the newest shown.
    second = answers.nth(1)
    first_text = second.locator(".msg-content").inner_text()
    for _ in range(2):
        second.locator("[data-action=retry]").click()
        wait_idle(page)
    expect(second.locator("[data-version-count]")).to_have_text("3/3")
    third_text = second.locator(".msg-content").inner_text()
    assert third_text != first_text
    second.get_by_role("button", name="Previous version").click()
    expect(second.locator("[data-version-count]")).to_have_text("2/3")
    shown = second.locator(".msg-content").inner_text()
    assert shown not in (first_text, third_text)
    second.get_by_role("button", name="Previous version").click()
    expect(second.locator("[data-version-count]")).to_have_text("1/3")
    assert second.locator(".msg-content").inner_text() == first_text
    expect(second.get_by_role("button", name="Previous version")).to_be_disabled()
    second.get_by_role("button", name="Next version").click()
    expect(second.locator("[data-version-count]")).to_have_text("2/3")

    # The conversation goes on from the version shown.
    send(page, "go on")
    wait_idle(page)
    sent = received(polish_engine)[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert sent[3]["content"].startswith(shown.split(".")[0])
    page.screenshot(path=artifacts_dir / "playground-polish-1440.png")
    assert page.errors == []


@pytest.mark.browser
def test_escape_stops_a_running_answer(page, polish_engine):
    page.goto(f"/playground/?model={FIRST}")
    send(page, "slow please")
    expect(page.locator(".msg-assistant.streaming .msg-content")).to_contain_text("tick")
    page.keyboard.press("Escape")
    wait_idle(page)
    answer = page.locator(".msg-assistant").last
    expect(answer.locator("[data-metric=finish] b")).to_have_text("stopped")
    assert answer.locator(".msg-content").inner_text().count("tick") < 300
    assert page.errors == []


@pytest.mark.browser
def test_json_mode_and_schema_are_sent_as_response_format(page, polish_engine):
    page.goto(f"/playground/?model={FIRST}")
    page.select_option('[data-param="response_format"]', "json_object")
    send(page, "json please")
    wait_idle(page)
    assert received(polish_engine)[-1]["response_format"] == {"type": "json_object"}

    # A schema that is no JSON: an inline error, nothing sent.
    page.select_option('[data-param="response_format"]', "json_schema")
    page.fill("[data-json-schema]", '{"type": "object",')
    count = len(received(polish_engine))
    send(page, "with a schema")
    expect(page.locator("[data-json-schema-error]")).to_contain_text("not valid JSON")
    page.wait_for_timeout(300)
    assert len(received(polish_engine)) == count
    expect(page.locator("#prompt")).to_have_value("with a schema")  # the message is kept

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    page.fill("[data-json-schema]", json.dumps(schema))
    expect(page.locator("[data-json-schema-error]")).to_be_hidden()
    page.click("#send")
    wait_idle(page)
    sent = received(polish_engine)[-1]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"] == schema and sent["json_schema"]["name"] == "response"
    # View code shows the same body.
    page.click("#view-code")
    expect(page.locator("#code-text")).to_contain_text('"json_schema"')
    assert page.errors == []


@pytest.mark.browser
def test_n_samples_show_as_versions_of_one_answer(page, polish_engine):
    page.goto(f"/playground/?model={FIRST}")
    page.fill("[data-sample-count]", "2")
    count = len(received(polish_engine))
    send(page, "two takes")
    answer = page.locator(".msg-assistant").last
    expect(answer.locator("[data-version-count]")).to_have_text("2/2")
    wait_idle(page)
    assert len(received(polish_engine)) == count + 2
    assert page.locator(".msg-assistant").count() == 1
    texts = {answer.locator(".msg-content").inner_text()}
    answer.get_by_role("button", name="Previous version").click()
    texts.add(answer.locator(".msg-content").inner_text())
    assert len(texts) == 2  # two different samples
    page.click("#view-code")
    expect(page.locator("#code-text")).to_contain_text("# Sent 2 times, one request per sample.")
    assert page.errors == []


def test_the_server_passes_response_format_on_and_refuses_other_shapes():
    messages = [{"role": "user", "content": "hi"}]
    schema_format = {"type": "json_schema", "json_schema": {"name": "r", "schema": {}}}
    body = chat_body_build(model="m", messages=messages, params={"response_format": schema_format})
    assert body["response_format"] == schema_format
    assert "response_format" not in chat_body_build(model="m", messages=messages, params={})
    with pytest.raises(PlaygroundRequestError) as refused:
        chat_body_build(model="m", messages=messages, params={"response_format": "json"})
    assert refused.value.param == "response_format"
