"""The web UI in Debian's Chromium (Playwright) against the product run for real: daphne on a
temporary SQLite file, the embedded llama.cpp engine (tests marked `engine`), a hostile engine
whose answers are HTML attacks. Screenshots go to test-artifacts/."""

import re

import pytest
from playwright.sync_api import expect

from tests.support.engines import EngineProcess, start_embedded_engine
from tests.support.processes import PYTHON, free_port, start_process, wait_until_answers
from tests.support.stack import CLOSED_ENGINE_URL, Stack, sqlite_database_url

pytestmark = pytest.mark.browser

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"  # deployed on the embedded engine too
PHI = "microsoft/Phi-4-mini-instruct"  # deployed on the embedded engine too
HOSTILE = "deepseek-ai/DeepSeek-V3-0324"  # deployed on the hostile engine
VISION = "meta-llama/Llama-4-Scout-17B-16E-Instruct"  # text+vision, on the hostile engine too
# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2212bc30000000049454e44ae426082"
)
PASSWORD = "live-test-password"
BLUE = "rgb(34, 89, 224)"  # --accent in static/css/app.css (darkened for 4.5:1 contrast)

WORLD = {
    "organizations": [{"slug": "acme", "plan": "free"}],
    "users": [
        {"username": "alice", "organization": "acme", "role": "admin", "concurrency_limit": 20}
    ],
    "teams": [{"name": "acme", "organization": "acme", "members": ["alice"]}],
    "projects": [
        {"team": "acme", "name": "main", "default_for": ["alice"]},
        {"team": "acme", "name": "lab"},
    ],
}


@pytest.fixture(scope="module")
def hostile_engine(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("hostile")
    port = free_port()
    log_path = var_dir / "hostile.log"
    process = start_process(
        [
            PYTHON,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "tests.playground.hostile_engine:app",
        ],
        env={},
        log_path=log_path,
    )
    wait_until_answers(
        f"http://127.0.0.1:{port}/health", process=process, log_path=log_path, ok_only=True
    )
    engine = EngineProcess(process=process, port=port, log_path=log_path)
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, hostile_engine):
    var_dir = tmp_path_factory.mktemp("ui-stack")
    live = Stack(
        database_url=sqlite_database_url(var_dir),
        var_dir=var_dir,
        embedded_engine_url=CLOSED_ENGINE_URL,
    )
    live.migrate()
    live.seed(
        {
            **WORLD,
            "deployments": [
                {"name": "hostile", "model": HOSTILE, "base_url": hostile_engine.base_url},
                {"name": "hostile-eyes", "model": VISION, "base_url": hostile_engine.base_url},
            ],
        }
    )
    live.start_servers(1)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def embedded_engine(tmp_path_factory, stack):
    """The real SmolLM2 engine, serving SmolLM2 and, under two catalog names, the same model."""
    engine = start_embedded_engine(var_dir=tmp_path_factory.mktemp("engine"))
    stack.seed(
        {
            "deployments": [
                {
                    "name": "smol",
                    "model": SMOL,
                    "base_url": engine.base_url,
                    "upstream_model": SMOL,
                },
                {
                    "name": "smol-as-llama",
                    "model": LLAMA_8B,
                    "base_url": engine.base_url,
                    "upstream_model": SMOL,
                },
                {
                    "name": "smol-as-phi",
                    "model": PHI,
                    "base_url": engine.base_url,
                    "upstream_model": SMOL,
                },
            ]
        }
    )
    yield engine
    engine.stop()


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
    yield page
    context.close()


def sign_in(page, username="alice"):
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inference/")


def card(page, model_id):
    return page.locator(f'.model-card[data-model-id="{model_id}"]')


def test_sign_up_then_sign_out(page):
    page.goto("/accounts/signup/")
    page.fill("input[name=username]", "newcomer")
    page.fill("input[name=password1]", "a-Long-pass-42")
    page.fill("input[name=password2]", "a-Long-pass-42")
    page.click("button[type=submit]")
    page.wait_for_url("**/inference/")
    assert page.locator("#project-select option:checked").inner_text() == "newcomer/default"
    assert page.locator(".topnav a", has_text="Billing").count() == 1  # admin of their own org
    page.click("text=Sign out")
    page.goto("/playground/")
    assert "/accounts/login/" in page.url
    assert page.errors == []


def test_project_switcher_changes_the_project_used_everywhere(page):
    sign_in(page)
    page.goto(f"/inference/models/{HOSTILE}")
    expect(page.locator("#project-select option:checked")).to_have_text("acme/main")
    with page.expect_navigation():
        page.select_option("#project-select", label="acme/lab")
    expect(page.locator("#project-select option:checked")).to_have_text("acme/lab")
    expect(page.locator("#ex-curl")).to_contain_text("OpenAI-Project: acme/lab")
    with page.expect_navigation():
        page.select_option("#project-select", label="acme/main")
    expect(page.locator("#ex-curl")).to_contain_text("OpenAI-Project: acme/main")
    assert page.errors == []


def test_model_output_renders_inert(page, stack, artifacts_dir):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page)
    page.goto(f"/playground/?model={HOSTILE}")
    page.fill("#prompt", "Say something nasty")
    page.keyboard.press("Enter")
    answer = page.locator(".msg-assistant .msg-content").last
    page.locator(".msg-assistant [data-metric=finish]").wait_for()
    page.wait_for_timeout(300)  # give any injected handler the chance to fire

    assert dialogs == []
    assert page.evaluate("window.__pwned") is None
    assert answer.locator("strong").inner_text() == "bold"  # Markdown still renders
    hostile = answer.locator(
        "script, img, svg, iframe, [onerror], [onclick], [onload], a[href^='javascript']"
    )
    assert hostile.count() == 0
    assert answer.locator(".code-block .copy-code").count() == 1  # code blocks get a copy button
    page.screenshot(path=artifacts_dir / "playground-hostile-output.png")
    assert page.errors == []


def test_card_click_toggles_selection_and_the_name_opens_the_model_page(page):
    sign_in(page)
    hostile = card(page, HOSTILE)
    hostile.locator(".facts").click()
    expect(hostile.locator(".compare-btn")).to_have_text("Compare 1 model in the Playground")
    hostile.locator(".model-id code").click()  # anywhere but the name: unselects
    expect(hostile).not_to_have_class(re.compile(r"\bselected\b"))
    expect(hostile.locator(".compare-btn")).to_be_hidden()
    hostile.locator(".model-name a").click()
    page.wait_for_url(f"**/inference/models/{HOSTILE}")
    expect(page.locator("#ex-curl")).to_contain_text(f'"model": "{HOSTILE}"')
    expect(page.locator("#ex-curl")).to_contain_text("OpenAI-Project: acme/main")
    page.click("text=Try in Playground")
    page.wait_for_url(f"**/playground/?model={HOSTILE}")
    assert page.locator("[data-model-select]").input_value() == HOSTILE
    # The dropdown's "Compare" entry leads back to the card selection.
    page.select_option("[data-model-select]", "__compare__")
    page.wait_for_url("**/inference/?compare=1")
    expect(page.locator(".hint")).to_contain_text("Compare N models in the Playground")
    assert page.errors == []


def test_images_can_be_attached_only_for_vision_models(page, tmp_path):
    sign_in(page)
    page.goto(f"/playground/?model={VISION}")
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    page.set_input_files("[data-attach-input]", str(image))
    expect(page.locator(".attachments .thumb")).to_have_count(1)
    page.fill("#prompt", "What is in this picture?")
    page.keyboard.press("Enter")
    page.locator(".msg-assistant [data-metric=finish]").wait_for()
    thumb = page.locator(".msg-user .thumb")
    assert thumb.get_attribute("src").startswith("data:image/png;base64,")
    expect(page.locator(".attachments .thumb")).to_have_count(0)
    expect(page.locator(".msg-error:not([hidden])")).to_have_count(0)
    # A text-only model cannot see: no attach button.
    expect(page.locator("[data-attach]")).to_be_visible()
    page.select_option("[data-model-select]", HOSTILE)
    expect(page.locator("[data-attach]")).to_be_hidden()
    assert page.errors == []


def test_compare_panes_can_be_added_and_removed_and_the_url_follows(page):
    sign_in(page)
    page.goto(f"/playground/compare?models={HOSTILE},{HOSTILE}")
    assert page.locator(".pane").count() == 2
    page.click("#add-pane")
    assert page.locator(".pane").count() == 3
    assert page.evaluate("location.search") == f"?models={HOSTILE},{HOSTILE},{HOSTILE}"
    page.locator(".pane").nth(0).locator('[data-action="remove"]').click()
    assert page.locator(".pane").count() == 2
    assert page.locator(".pane").nth(0).locator('[data-action="remove"]').is_disabled()
    # Each pane has its own parameters, and its own "View code".
    second = page.locator(".pane").nth(1)
    second.locator('[data-action="settings"]').click()
    second.locator('[data-param="temperature"]').fill("1.5")
    second.locator('[data-action="code"]').click()
    expect(second.locator("[data-pane-code]")).to_contain_text('"temperature": 1.5')
    expect(second.locator("[data-pane-code]")).to_contain_text("$YARDSTICK_API_KEY")
    # One message to all panes: each answers through the gateway.
    page.fill("#prompt", "hi")
    page.keyboard.press("Control+Enter")
    for i in range(2):
        page.locator(".pane").nth(i).locator(".msg-assistant [data-metric=finish]").wait_for()
    expect(second.locator("[data-pane-code]")).to_contain_text('"content": "hi"')
    assert page.errors == []


@pytest.mark.engine
def test_select_three_cards_and_compare_them_streaming_from_the_engine(
    page, stack, embedded_engine, artifacts_dir
):
    sign_in(page)
    before = stack.usage_rows()
    for model_id in (SMOL, LLAMA_8B, PHI):
        card(page, model_id).locator(".model-desc").click()
    for model_id in (SMOL, LLAMA_8B, PHI):
        selected = card(page, model_id)
        expect(selected).to_have_class(re.compile(r"\bselected\b"))
        # The blue border (waits out the CSS transition).
        expect(selected).to_have_css("border-top-color", BLUE)
        expect(selected.locator(".compare-btn")).to_have_text("Compare 3 models in the Playground")
        expect(selected.locator(".compare-btn")).to_be_visible()
    assert card(page, HOSTILE).locator(".compare-btn").is_hidden()
    expect(card(page, HOSTILE)).not_to_have_css("border-top-color", BLUE)
    page.mouse.move(0, 0)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header belongs at the top of the shot
    page.screenshot(path=artifacts_dir / "inference.png", full_page=True)

    card(page, LLAMA_8B).locator(".compare-btn").click()
    page.wait_for_url(re.compile(r"/playground/compare\?models="))
    assert page.evaluate("location.search") == f"?models={SMOL},{LLAMA_8B},{PHI}"
    panes = page.locator(".pane")
    assert panes.count() == 3
    # Each pane has its own parameters: short answers keep the test quick.
    for i in range(3):
        panes.nth(i).locator('[data-action="settings"]').click()
        panes.nth(i).locator('[data-param="max_tokens"]').fill(str(40 + i))
        panes.nth(i).locator('[data-action="settings"]').click()
    page.fill("#prompt", "Write two sentences about the sea.")
    page.keyboard.press("Enter")
    # While streaming, live metrics (elapsed) tick in every pane.
    for i in range(3):
        page.wait_for_function(
            "el => el.querySelector('[data-m=elapsed]').textContent !== '–'",
            arg=panes.nth(i).element_handle(),
        )
    for i in range(3):
        pane = panes.nth(i)
        pane.locator(".msg-assistant [data-metric=finish]").wait_for(timeout=120_000)
        assert pane.locator(".msg-assistant .msg-content").inner_text().strip()
        assert 0 < int(pane.locator("[data-m=tokens]").inner_text()) <= 40 + i
        assert re.fullmatch(r"\d+ ms|\d+\.\d\d s", pane.locator("[data-m=ttft]").inner_text())
        assert re.fullmatch(r"\d+\.\d", pane.locator("[data-m=rate]").inner_text())
        assert pane.locator("[data-m=cost]").inner_text().startswith("$")
    page.mouse.move(0, 0)
    page.screenshot(path=artifacts_dir / "compare-3-panes.png")
    rows = stack.usage_rows_since(before, expect=3)
    assert len(rows) == 3 and {r["source"] for r in rows} == {"compare"}
    assert {r["model"] for r in rows} == {SMOL, LLAMA_8B, PHI}
    assert page.errors == []


@pytest.mark.engine
def test_playground_chat_round_trip_with_the_engine(page, stack, embedded_engine, artifacts_dir):
    sign_in(page)
    page.goto(f"/playground/?model={SMOL}")
    page.fill("#system-prompt", "You are a concise assistant.")
    page.fill('[data-param="max_tokens"]', "48")
    page.fill("#prompt", "What is the capital of France?")
    page.keyboard.press("Enter")
    assert page.locator("#stop").is_visible()
    meta = page.locator(".msg-assistant .msg-meta").last
    meta.locator("[data-metric=finish]").wait_for(timeout=120_000)
    assert page.locator(".msg-assistant .msg-content").last.inner_text().strip()
    for label in ("TTFT", "tok/s", "prompt", "completion", "cost", "finish"):
        assert meta.locator(f"[data-metric='{label}']").count() == 1
    assert 0 < int(meta.locator("[data-metric=completion] b").inner_text()) <= 48
    assert page.locator("#send").is_visible()

    # A second turn carries the history; then retry regenerates the last answer.
    page.fill("#prompt", "And of Italy?")
    page.keyboard.press("Control+Enter")
    page.locator(".msg-assistant").nth(1).locator("[data-metric=finish]").wait_for(timeout=120_000)
    assert page.locator(".msg").count() == 4

    page.click("#view-code")
    code = page.locator("#code-text").inner_text()
    assert "curl http://127.0.0.1" in code and "$YARDSTICK_API_KEY" in code
    assert '"You are a concise assistant."' in code and "And of Italy?" in code
    assert '"max_tokens": 48' in code
    assert not re.search(r"ys-[A-Za-z0-9_-]{8}", code)  # no real key in the snippet
    page.click("[data-code-tab=python]")
    assert 'os.environ["YARDSTICK_API_KEY"]' in page.locator("#code-text").inner_text()
    page.mouse.move(0, 0)
    page.screenshot(path=artifacts_dir / "playground.png")

    page.locator(".msg-assistant").nth(1).hover()
    page.locator(".msg-assistant").nth(1).locator("[data-action=retry]").click()
    page.locator(".msg-assistant").nth(1).locator("[data-metric=finish]").wait_for(timeout=120_000)
    assert page.locator(".msg").count() == 4
    page.locator(".msg-user").nth(1).hover()
    page.locator(".msg-user").nth(1).locator("[data-action=delete]").click()
    assert page.locator(".msg").count() == 3
    page.click("#clear-chat")
    assert page.locator(".msg").count() == 0

    # Stop: the answer ends where it was, marked "stopped", and the chat can go on.
    page.fill("#prompt", "Write a very long story about a dragon and a knight.")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => (document.querySelector('.msg-assistant .msg-content')?.innerText || '').length > 20"
    )
    page.click("#stop")
    finish = page.locator(".msg-assistant [data-metric=finish] b")
    expect(finish).to_have_text("stopped")
    expect(page.locator("#send")).to_be_visible()
    assert page.errors == []


@pytest.mark.scaled
def test_compare_works_in_the_scaled_configuration(
    browser, hostile_engine, tmp_path, fresh_postgres_database, redis_url, redis_key_prefix
):
    """Two daphne processes on PostgreSQL + Redis: one page on each, panes stream on both."""
    live = Stack(
        database_url=fresh_postgres_database,
        var_dir=tmp_path,
        redis_url=redis_url,
        redis_key_prefix=redis_key_prefix,
    )
    try:
        live.migrate()
        live.seed(
            {
                **WORLD,
                "deployments": [
                    {"name": "hostile", "model": HOSTILE, "base_url": hostile_engine.base_url}
                ],
            }
        )
        live.start_servers(2)
        for url in live.urls:
            context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=url)
            page = context.new_page()
            sign_in(page)
            page.goto(f"/playground/compare?models={HOSTILE},{HOSTILE}")
            page.fill("#prompt", "hi")
            page.keyboard.press("Enter")
            for i in range(2):
                pane = page.locator(".pane").nth(i)
                pane.locator(".msg-assistant [data-metric=finish]").wait_for()
                expect(pane.locator(".msg-assistant strong")).to_have_text("bold")
            context.close()
        rows = live.usage_rows_since([], expect=4)
        assert len(rows) == 4 and {r["source"] for r in rows} == {"compare"}
        # Each Compare page is one trace session, on PostgreSQL's partitioned calls table too.
        calls = live.query("SELECT session_id, cost_micros, request_id FROM traces_call")
        assert len(calls) == 4 and len({call["session_id"] for call in calls}) == 2
        costs = {row["request_id"]: row["cost_micros"] for row in rows}
        assert all(call["cost_micros"] == costs[call["request_id"]] for call in calls)
    finally:
        live.stop()


def test_unavailable_cards_cannot_be_picked_and_selection_stops_at_six(
    page, stack, hostile_engine, artifacts_dir
):
    """A card no engine serves says why instead of being selected; with every model served,
    the seventh pick is refused with a message (Compare shows six panes), so the button never
    offers more than it opens."""
    sign_in(page)
    cards = page.locator(".model-card")
    unavailable = [
        cards.nth(i).get_attribute("data-model-id")
        for i in range(cards.count())
        if "unavailable" in (cards.nth(i).get_attribute("class") or "")
    ]
    assert unavailable, "the catalog has models without a deployment"
    first_off = card(page, unavailable[0])
    first_off.locator(".facts").click()
    expect(first_off).not_to_have_class(re.compile(r"\bselected\b"))
    expect(page.locator("#selection-status")).to_contain_text("is not available")

    stack.seed(
        {
            "deployments": [
                {"name": f"cap-test-{n}", "model": model_id, "base_url": hostile_engine.base_url}
                for n, model_id in enumerate(unavailable)
            ]
        }
    )
    try:
        page.reload()
        ids = [cards.nth(i).get_attribute("data-model-id") for i in range(cards.count())]
        assert len(ids) >= 7 and page.locator(".model-card.unavailable").count() == 0
        for model_id in ids[:6]:
            card(page, model_id).locator(".facts").click()
        expect(page.locator("#selection-status")).to_be_hidden()
        card(page, ids[6]).locator(".facts").click()
        expect(card(page, ids[6])).not_to_have_class(re.compile(r"\bselected\b"))
        expect(page.locator("#selection-status")).to_contain_text("up to 6 models")
        expect(card(page, ids[0]).locator(".compare-btn")).to_have_text(
            "Compare 6 models in the Playground"
        )
        page.screenshot(path=artifacts_dir / "inference-selection-cap.png")
        assert page.errors == []
    finally:
        stack.execute("DELETE FROM inference_app_deployment WHERE name LIKE 'cap-test-%'")
