"""The Playground's history in Debian's Chromium against the product run for real (daphne, the
gateway writing calls on settlement, bench's fake engine): a chat survives a reload, and a
Compare session reopened from the History menu comes back with every pane. Screenshots go to
test-artifacts/."""

import time

import pytest
from playwright.sync_api import expect

from tests.support.stack import CLOSED_ENGINE_URL, Stack, sqlite_database_url

pytestmark = pytest.mark.browser

PASSWORD = "live-test-password"
FAST = "meta-llama/Llama-3.1-8B-Instruct"
FAST_2 = "microsoft/Phi-4-mini-instruct"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_engine):
    var_dir = tmp_path_factory.mktemp("history-stack")
    live = Stack(
        database_url=sqlite_database_url(var_dir),
        var_dir=var_dir,
        embedded_engine_url=CLOSED_ENGINE_URL,
    )
    live.migrate()
    live.seed(
        {
            "organizations": [{"slug": "acme", "plan": "free"}],
            "users": [
                {
                    "username": "alice",
                    "organization": "acme",
                    "role": "admin",
                    "concurrency_limit": 20,
                },
                {"username": "carol", "organization": "acme", "role": "member"},
            ],
            "teams": [{"name": "acme", "organization": "acme", "members": ["alice", "carol"]}],
            "projects": [{"team": "acme", "name": "main", "default_for": ["alice", "carol"]}],
            "deployments": [
                {
                    "name": name,
                    "model": model,
                    "base_url": fake_engine.base_url,
                    "upstream_model": "fast-model",
                }
                for name, model in (("fake-fast", FAST), ("fake-fast-2", FAST_2))
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
        browser = playwright.chromium.launch(executable_path=chromium_executable, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=stack.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    context.close()


def sign_in(page, username="alice"):
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inference/")


def session_of(page) -> str:
    page.wait_for_url("**session=*")
    return page.url.split("session=")[1].split("&")[0]


def wait_for_calls(stack, session_id: str, count: int, timeout: float = 15) -> None:
    """Calls are written when their usage settles, a moment after the answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = stack.query(
            "SELECT COUNT(*) AS n FROM traces_call WHERE session_id = %s", (session_id,)
        )
        if rows[0]["n"] >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"session {session_id}: fewer than {count} calls after {timeout} s")


def test_a_chat_survives_a_reload(page, stack, artifacts_dir):
    sign_in(page)
    page.goto(f"/playground/?model={FAST}")
    page.fill("#system-prompt", "You are a yardstick.")
    page.fill('[data-param="max_tokens"]', "40")
    page.fill("#prompt", "How long is a yard?")
    page.keyboard.press("Enter")
    page.locator(".msg-assistant [data-metric=finish]").wait_for()
    answer = page.locator(".msg-assistant .msg-content").inner_text()
    assert answer.strip()
    session_id = session_of(page)
    wait_for_calls(stack, session_id, 1)

    page.reload()

    expect(page.locator(".msg-user .msg-content")).to_have_text("How long is a yard?")
    expect(page.locator(".msg-assistant .msg-content")).to_have_text(answer)
    expect(page.locator("#system-prompt")).to_have_value("You are a yardstick.")
    expect(page.locator('[data-param="max_tokens"]')).to_have_value("40")
    assert page.locator("[data-model-select]").input_value() == FAST
    # The next message continues the same session.
    page.fill("#prompt", "And a metre?")
    page.keyboard.press("Enter")
    # (A restored answer has no live metrics: only the new one shows "finish".)
    expect(page.locator(".msg-assistant")).to_have_count(2)
    page.locator(".msg-assistant [data-metric=finish]").wait_for()
    wait_for_calls(stack, session_id, 2)
    assert session_of(page) == session_id
    # On a phone the History menu stays on the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.click(".history-menu > summary")
    panel = page.locator(".history-panel")
    expect(panel.locator(f'[data-session="{session_id}"]')).to_be_visible()
    box = panel.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    page.screenshot(path=str(artifacts_dir / "playground-history-390.png"))
    assert page.errors == []


def test_a_compare_session_reopened_from_history_restores_every_pane(page, stack, artifacts_dir):
    sign_in(page)
    page.goto(f"/playground/compare?models={FAST},{FAST_2}")
    page.click("#add-pane")
    expect(page.locator(".pane")).to_have_count(3)
    page.locator(".pane").nth(2).locator("[data-model-select]").select_option(FAST_2)
    page.fill("#prompt", "Name a unit of length.")
    page.keyboard.press("Enter")
    expect(page.locator(".pane .msg-assistant.streaming")).to_have_count(0)
    expect(page.locator(".pane .msg-assistant")).to_have_count(3)
    answers = page.locator(".pane .msg-assistant .msg-content").all_inner_texts()
    session_id = session_of(page)
    wait_for_calls(stack, session_id, 3)

    # Somewhere else, then back through the History menu.
    page.goto("/playground/")
    page.click(".history-menu > summary")
    item = page.locator(f'.history-item[data-session="{session_id}"]')
    expect(item).to_be_visible()
    expect(item).to_contain_text("Name a unit of length.")
    expect(item).to_contain_text("Compare")
    page.screenshot(path=str(artifacts_dir / "playground-history-1440.png"))
    item.click()
    # A predicate, not a glob: the page rewrites its URL to ?models=a/b,...&session=..., and a
    # glob's "*" stops at the models' slashes (it matched only before the rewrite).
    page.wait_for_url(lambda url: "/playground/compare?" in url and f"session={session_id}" in url)

    panes = page.locator(".pane")
    expect(panes).to_have_count(3)
    models = [panes.nth(i).locator("[data-model-select]").input_value() for i in range(3)]
    assert models == [FAST, FAST_2, FAST_2]
    for i in range(3):
        expect(panes.nth(i).locator(".msg-user .msg-content")).to_have_text(
            "Name a unit of length."
        )
        expect(panes.nth(i).locator(".msg-assistant .msg-content")).to_have_text(answers[i])
    page.screenshot(path=str(artifacts_dir / "compare-restored-1440.png"))
    assert page.errors == []


def test_a_member_reads_a_shared_chat_and_continues_it_in_a_copy(
    browser, page, stack, artifacts_dir
):
    sign_in(page)
    page.goto(f"/playground/?model={FAST}")
    page.fill("#prompt", "Share this <b>please</b>")
    page.keyboard.press("Enter")
    page.locator(".msg-assistant [data-metric=finish]").wait_for()
    answer = page.locator(".msg-assistant .msg-content").inner_text()
    session_id = session_of(page)
    wait_for_calls(stack, session_id, 1)

    other = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=stack.url)
    carol = other.new_page()
    carol.set_default_timeout(15_000)
    errors = []
    carol.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        sign_in(carol, "carol")
        carol.goto(f"/playground/s/{session_id}")
        expect(carol.locator(".session-view")).to_contain_text("Read-only")
        expect(carol.locator(".msg-user .msg-content")).to_have_text("Share this <b>please</b>")
        expect(carol.locator(".msg-assistant .msg-content")).to_have_text(answer)
        assert carol.locator(".msg-user b").count() == 0  # text, not markup
        carol.screenshot(path=str(artifacts_dir / "playground-session-readonly-1440.png"))

        carol.click("#continue")
        carol.wait_for_url("**/playground/?session=*")
        copy_id = session_of(carol)
        assert copy_id != session_id
        expect(carol.locator(".msg-assistant .msg-content")).to_have_text(answer)
        carol.fill("#prompt", "Go on")
        carol.keyboard.press("Enter")
        expect(carol.locator(".msg-assistant")).to_have_count(2)
        carol.locator(".msg-assistant [data-metric=finish]").wait_for()
        wait_for_calls(stack, copy_id, 1)
        assert session_of(carol) == copy_id
        # Alice's session got nothing from Carol.
        rows = stack.query(
            "SELECT COUNT(*) AS n FROM traces_call WHERE session_id = %s", (session_id,)
        )
        assert rows[0]["n"] == 1
        assert errors == []
    finally:
        other.close()


def test_open_in_playground_from_a_calls_page_loads_its_conversation(page, stack, artifacts_dir):
    sign_in(page)
    page.goto(f"/playground/?model={FAST_2}")
    page.fill("#system-prompt", "Answer in one line.")
    page.fill('[data-param="max_tokens"]', "33")
    page.fill("#prompt", "What is a rod?")
    page.keyboard.press("Enter")
    page.locator(".msg-assistant [data-metric=finish]").wait_for()
    answer = page.locator(".msg-assistant .msg-content").inner_text()
    session_id = session_of(page)
    wait_for_calls(stack, session_id, 1)
    span_id = stack.query("SELECT span_id FROM traces_call WHERE session_id = %s", (session_id,))[
        0
    ]["span_id"]

    # A fresh page, then the call's page and its Open in Playground.
    page.goto(f"/traces/{span_id}")
    page.click("[data-testid=open-in-playground]")
    page.wait_for_url(f"**/playground/?from_call={span_id}")

    expect(page.locator(".msg-user .msg-content")).to_have_text("What is a rod?")
    expect(page.locator(".msg-assistant .msg-content")).to_have_text(answer)
    expect(page.locator("#system-prompt")).to_have_value("Answer in one line.")
    expect(page.locator('[data-param="max_tokens"]')).to_have_value("33")
    assert page.locator("[data-model-select]").input_value() == FAST_2
    # Going on from there is a new chat of its own.
    page.fill("#prompt", "And a chain?")
    page.keyboard.press("Enter")
    expect(page.locator(".msg-assistant")).to_have_count(2)
    new_id = session_of(page)
    assert new_id != session_id and "from_call" not in page.url
    assert page.errors == []
