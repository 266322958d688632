"""Compare on the Free plan in Debian's Chromium against the product run for real (daphne, the
gateway, bench's fake engine streaming slowly): six panes on a plan that runs four at once
finish all six answers, a message sent while panes are busy reaches every pane, a slot taken
by an API call sends a pane back to waiting instead of failing it, the totals and markers, the
word diff, per-pane prompts, an enlarged pane, and the phone tabs. Screenshots go to
test-artifacts/."""

import re
import threading
import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.engines import fake_engine_reset, fake_engine_stats
from tests.support.stack import CLOSED_ENGINE_URL, Stack, sqlite_database_url

pytestmark = pytest.mark.browser

PASSWORD = "live-test-password"
SLOW = "meta-llama/Llama-3.1-8B-Instruct"  # on the fake engine's "slow-model"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FREE_SLOTS = 4  # billing/plans.py: the Free plan's user_concurrency


@pytest.fixture(scope="module")
def fake_engine(tmp_path_factory):
    """Slow enough (about 2 s an answer) that the panes overlap; "stamp" starts every answer
    with its time, so two answers differ (the diff has something to show)."""
    from tests.support.engines import start_fake_engine

    engine = start_fake_engine(
        var_dir=tmp_path_factory.mktemp("compare-engine"),
        tokens=8,
        tokens_per_second=200,
        model_overrides={
            "slow-model": {"delay_ms": 200, "tokens": 50, "tokens_per_second": 25, "stamp": True}
        },
    )
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_engine):
    var_dir = tmp_path_factory.mktemp("compare-stack")
    live = Stack(
        database_url=sqlite_database_url(var_dir),
        var_dir=var_dir,
        embedded_engine_url=CLOSED_ENGINE_URL,
    )
    live.migrate()
    live.seed(
        {
            # bob has no limit of his own: the Free plan's four requests at once apply.
            "organizations": [{"slug": "acme", "plan": "free"}],
            "users": [{"username": "bob", "organization": "acme", "role": "admin"}],
            "teams": [{"name": "acme", "organization": "acme", "members": ["bob"]}],
            "projects": [{"team": "acme", "name": "main", "default_for": ["bob"]}],
            "deployments": [
                {
                    "name": "fake-slow",
                    "model": SLOW,
                    "base_url": fake_engine.base_url,
                    "upstream_model": "slow-model",
                }
            ],
            "api_keys": [{"label": "bob", "user": "bob"}],
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


def _page(browser, stack, **options):
    context = browser.new_context(base_url=stack.url, **options)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    return context, page


@pytest.fixture
def page(browser, stack):
    context, page = _page(browser, stack, viewport={"width": 1440, "height": 900})
    yield page
    context.close()


@pytest.fixture
def phone(browser, stack):
    context, page = _page(
        browser, stack, viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    yield page
    context.close()


def axe_problems(page, **options) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, **options)
    return [
        f"{v['id']}: {[n['target'] for n in v['nodes'][:3]]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def sign_in(page):
    page.goto("/accounts/login/")
    page.fill("input[name=username]", "bob")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inference/")


def open_compare(page, count: int):
    page.goto("/playground/compare?models=" + ",".join([SLOW] * count))
    expect(page.locator(".pane")).to_have_count(count)


def watch_states(page):
    """Record in the page the most panes seen streaming and waiting at once (every 20 ms)."""
    page.evaluate(
        """() => {
          window.__seen = {streaming: 0, waiting: 0};
          setInterval(() => {
            for (const state of ["streaming", "waiting"]) {
              const n = document.querySelectorAll(`.pane[data-state="${state}"]`).length;
              window.__seen[state] = Math.max(window.__seen[state], n);
            }
          }, 20);
        }"""
    )


def wait_until_idle(page, timeout_ms: int = 60_000):
    page.wait_for_function(
        """() => document.querySelectorAll(
             '.pane[data-state="streaming"], .pane[data-state="waiting"], .pane-queued:not([hidden])'
           ).length === 0""",
        timeout=timeout_ms,
    )


def test_six_panes_on_the_free_plan_run_four_at_once_and_a_busy_send_reaches_every_pane(
    page, stack, fake_engine, artifacts_dir
):
    sign_in(page)
    open_compare(page, 6)
    expect(page.locator("#slot-limit")).to_contain_text("4 run at once")
    # Pane 2 answers shorter (so it is the cheapest).
    second = page.locator(".pane").nth(1)
    second.locator('[data-action="settings"]').click()
    second.locator('[data-param="max_tokens"]').fill("30")
    second.locator('[data-action="settings"]').click()
    fake_engine_reset(fake_engine)
    watch_states(page)

    page.fill("#prompt", "How long is a yard?")
    page.keyboard.press("Enter")
    # Four stream, two wait for a free slot (in words, not only a colour).
    expect(page.locator('.pane[data-state="streaming"]')).to_have_count(FREE_SLOTS)
    expect(page.locator('.pane[data-state="waiting"]')).to_have_count(2)
    expect(page.locator('.pane[data-state="waiting"] [data-pane-state]').first).to_have_text(
        "Waiting for a free slot"
    )
    # A second message while every pane is busy: queued in each pane, the box cleared.
    page.fill("#prompt", "And a metre?")
    page.click("#send")
    expect(page.locator("#prompt")).to_have_value("")
    expect(page.locator(".pane-queued:not([hidden])")).to_have_count(6)
    expect(page.locator(".pane-queued").first).to_have_text("1 message queued")
    page.screenshot(path=str(artifacts_dir / "compare-6-panes-waiting-1440.png"))

    wait_until_idle(page)

    for i in range(6):
        pane = page.locator(".pane").nth(i)
        expect(pane.locator(".msg-user .msg-content")).to_have_text(
            ["How long is a yard?", "And a metre?"]
        )
        expect(pane.locator(".msg-assistant")).to_have_count(2)
        expect(pane.locator(".msg-assistant [data-metric=finish]")).to_have_count(2)
        expect(pane.locator(".has-error")).to_have_count(0)
        expect(pane.locator("[data-pane-state]")).to_have_text("Done")
    seen = page.evaluate("window.__seen")
    assert seen["waiting"] >= 2 and seen["streaming"] == FREE_SLOTS, seen
    # The page kept to the plan itself: the gateway never had to refuse a pane.
    assert page.locator("#compare").get_attribute("data-slot-refusals") is None
    stats = fake_engine_stats(fake_engine)
    assert stats["max_concurrent"] <= FREE_SLOTS, stats
    assert stats["completed"] == 12 and stats["total_requests"] == 12, stats

    # Totals over every answer; fastest and slowest of the last ones; one marker of each kind.
    totals = page.locator("#compare-totals")
    expect(totals).to_be_visible()
    for label in ("Total cost", "Total tokens", "Fastest", "Slowest"):
        expect(totals).to_contain_text(label)
    expect(totals.locator('[data-total="fastest"]')).to_contain_text("pane ")
    expect(page.locator('[data-badge="fastest"]')).to_have_count(1)
    expect(page.locator('[data-badge="cheapest"]')).to_have_count(1)
    expect(second.locator('[data-badge="cheapest"]')).to_have_text("Cheapest")
    expect(second.locator(".msg-assistant [data-metric=completion] b").last).to_have_text("30")
    page.screenshot(path=str(artifacts_dir / "compare-6-panes-1440.png"))

    # The word diff of panes 1 and 2 (their answers start with different times).
    page.click("#toggle-diff")
    page.select_option("#diff-a", index=0)
    page.select_option("#diff-b", index=1)
    out = page.locator("#diff-output")
    expect(out.locator("ins").first).to_be_visible()
    expect(out.locator("del").first).to_be_visible()
    a = page.locator(".pane").nth(0).locator(".msg-assistant .msg-content").last.inner_text()
    b = page.locator(".pane").nth(1).locator(".msg-assistant .msg-content").last.inner_text()
    assert a != b
    # A: the diff without its insertions; B: without its deletions.
    old, new = page.evaluate(
        """() => {
          const text = (skip) => [...document.getElementById("diff-output").childNodes]
            .filter((n) => n.nodeName !== skip).map((n) => n.textContent).join("");
          return [text("INS"), text("DEL")];
        }"""
    )
    assert old.split() == a.split() and new.split() == b.split()
    page.screenshot(path=str(artifacts_dir / "compare-diff-1440.png"))
    # Totals, markers, states and the diff pass axe, in the light and the dark theme.
    assert axe_problems(page) == []
    page.emulate_media(color_scheme="dark")
    contrast = {"runOnly": {"type": "rule", "values": ["color-contrast"]}}
    assert axe_problems(page, options=contrast) == []
    page.screenshot(path=str(artifacts_dir / "compare-diff-1440-dark.png"))
    page.emulate_media(color_scheme="light")

    # Enlarge a pane; Escape restores it.
    third = page.locator(".pane").nth(2)
    third.locator('[data-action="enlarge"]').click()
    expect(third).to_have_class(re.compile(r"\benlarged\b"))
    box = third.bounding_box()
    assert box["width"] > 1200, box
    page.keyboard.press("Escape")
    expect(page.locator(".pane.enlarged")).to_have_count(0)
    assert page.errors == []


def _hold_a_slot(stack, key: str, done: threading.Event):
    """An API call of the same user streaming from the slow model (one of the four slots)."""
    body = {
        "model": SLOW,
        "messages": [{"role": "user", "content": "hold"}],
        "stream": True,
        "max_tokens": 50,
    }
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream(
        "POST", f"{stack.url}/v1/chat/completions", json=body, headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200
        for _ in response.iter_lines():
            pass
    done.set()


def test_a_slot_taken_by_an_api_call_sends_a_pane_back_to_waiting_not_to_an_error(
    page, stack, fake_engine
):
    sign_in(page)
    open_compare(page, 4)
    fake_engine_reset(fake_engine)
    done = threading.Event()
    holder = threading.Thread(
        target=_hold_a_slot, args=(stack, stack.api_keys["bob"], done), daemon=True
    )
    holder.start()
    deadline = time.monotonic() + 10
    while fake_engine_stats(fake_engine)["in_flight"] < 1:
        assert time.monotonic() < deadline, "the API call never reached the engine"
        time.sleep(0.05)
    watch_states(page)

    page.fill("#prompt", "Four panes, three slots")
    page.keyboard.press("Enter")
    wait_until_idle(page)
    holder.join(timeout=30)
    assert done.is_set()

    expect(page.locator(".has-error")).to_have_count(0)
    expect(page.locator('.pane [data-pane-state]:text-is("Done")')).to_have_count(4)
    expect(page.locator(".msg-assistant [data-metric=finish]")).to_have_count(4)
    # The refused pane showed "waiting" (the gateway's 429), then ran once a slot was free.
    assert page.evaluate("window.__seen")["waiting"] >= 1
    assert int(page.locator("#compare").get_attribute("data-slot-refusals")) >= 1
    assert fake_engine_stats(fake_engine)["max_concurrent"] <= FREE_SLOTS
    assert page.errors == []


def test_per_pane_prompts(page):
    sign_in(page)
    open_compare(page, 2)
    expect(page.locator("[data-pane-composer]").first).to_be_hidden()
    page.uncheck("#sync-prompts")
    expect(page.locator("#shared-composer")).to_be_hidden()
    first, second = page.locator(".pane").nth(0), page.locator(".pane").nth(1)
    first.locator("[data-pane-prompt]").fill("Only to the first pane")
    first.locator("[data-pane-composer] button[type=submit]").click()
    second.locator("[data-pane-prompt]").fill("Only to the second pane")
    second.locator("[data-pane-prompt]").press("Enter")
    wait_until_idle(page)
    expect(first.locator(".msg-user .msg-content")).to_have_text(["Only to the first pane"])
    expect(second.locator(".msg-user .msg-content")).to_have_text(["Only to the second pane"])
    expect(page.locator(".msg-assistant [data-metric=finish]")).to_have_count(2)
    page.check("#sync-prompts")
    expect(page.locator("#shared-composer")).to_be_visible()
    expect(page.locator("[data-pane-composer]").first).to_be_hidden()
    assert page.errors == []


def _swipe(page, dx: int):
    page.evaluate(
        """(dx) => {
          const el = document.getElementById("panes");
          const touch = (x) => new Touch({identifier: 1, target: el, clientX: x, clientY: 400});
          el.dispatchEvent(new TouchEvent("touchstart", {touches: [touch(200)], bubbles: true}));
          el.dispatchEvent(new TouchEvent("touchend", {changedTouches: [touch(200 + dx)], bubbles: true}));
        }""",
        dx,
    )


def test_on_a_phone_the_panes_are_tabs_with_their_state_in_words(phone, artifacts_dir):
    page = phone
    sign_in(page)
    open_compare(page, 6)
    tabs = page.locator("#pane-tabs [role=tab]")
    expect(tabs).to_have_count(6)
    expect(page.locator(".pane:visible")).to_have_count(1)
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "true")
    expect(tabs.nth(0).locator(".pane-tab-state")).to_have_text("Ready")

    page.fill("#prompt", "Hello from a phone")
    page.locator("#send").tap()
    expect(tabs.nth(0).locator(".pane-tab-state")).to_have_text("Streaming")
    expect(tabs.nth(5).locator(".pane-tab-state")).to_have_text("Waiting")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts_dir / "compare-tabs-390.png"))
    assert axe_problems(page) == []
    # Arrow keys move between the tabs.
    tabs.nth(0).focus()
    page.keyboard.press("ArrowRight")
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    expect(tabs.nth(1)).to_be_focused()

    tabs.nth(5).tap()
    expect(tabs.nth(5)).to_have_attribute("aria-selected", "true")
    expect(page.locator(".pane").nth(5)).to_be_visible()
    expect(page.locator(".pane").nth(0)).to_be_hidden()
    _swipe(page, 150)  # to the right: the previous pane
    expect(page.locator(".pane").nth(4)).to_be_visible()
    expect(tabs.nth(4)).to_have_attribute("aria-selected", "true")
    _swipe(page, -150)
    expect(page.locator(".pane").nth(5)).to_be_visible()

    wait_until_idle(page)
    for i in range(6):
        expect(tabs.nth(i).locator(".pane-tab-state")).to_have_text("Done")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.screenshot(path=str(artifacts_dir / "compare-tabs-390-done.png"))
    assert page.errors == []
