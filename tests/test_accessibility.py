"""Every page in Debian's Chromium, as a signed-in organization admin (and signed out for the
sign-in and sign-up pages), at 1440×900 and 390×844:

- axe-core (bundled by axe-playwright-python: nothing is downloaded) finds no serious or
  critical violation; in the dark theme (`prefers-color-scheme: dark`) its contrast rule passes;
- no page is wider than the screen (`document.documentElement.scrollWidth`);
- each page has exactly one h1;
- at 390 px the header's links are behind the Menu button, which opens them (aria-expanded) and
  every one of them is then on screen; at 1440 they are on screen without it.

Screenshots of each page at both widths: test-artifacts/a11y-<page>-<width>.png.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.models import Membership
from inference_app.catalog import EMBEDDED_MODEL_ID, ensure_embedded_deployment
from inference_app.models import CatalogModel, Deployment
from tests.traces.page_world import PASSWORD, make_member, record_call

pytestmark = pytest.mark.browser

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTHS = {1440: 900, 390: 844}
DOWN_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
DEGRADED_MODEL = "microsoft/Phi-4-mini-instruct"


@pytest.fixture
def a11y_world(transactional_db):
    """An organization admin with a project and a few traced calls; one model served, one down
    (its only deployment out of rotation) and one degraded (one of two out)."""
    user, project = make_member("ada", role=Membership.Role.ADMIN)
    ensure_embedded_deployment()
    down = CatalogModel.objects.get(model_id=DOWN_MODEL)
    Deployment.objects.create(
        model=down, name="down-a", base_url="http://127.0.0.1:9/v1", is_healthy=False
    )
    degraded = CatalogModel.objects.get(model_id=DEGRADED_MODEL)
    Deployment.objects.create(model=degraded, name="phi-a", base_url="http://127.0.0.1:9/v1")
    Deployment.objects.create(
        model=degraded, name="phi-b", base_url="http://127.0.0.1:9/v1", is_healthy=False
    )
    calls = [
        record_call(project, user=user, ago=timedelta(minutes=5 + i), prompt=f"Question {i}")
        for i in range(3)
    ]
    return user, calls[0].span_id


def signed_in_pages(span_id: str) -> dict[str, str]:
    return {
        "inference": "/inference/",
        "model": f"/inference/models/{EMBEDDED_MODEL_ID}",
        "playground": "/playground/",
        "compare": f"/playground/compare?models={EMBEDDED_MODEL_ID},{DEGRADED_MODEL}",
        "traces": "/traces/",
        "trace-call": f"/traces/{span_id}",
        "evaluations": "/evaluations/",
        "leaderboards": "/leaderboards/",
        "arena": "/arena/",
        "keys": "/settings/keys/",
        "billing": "/billing/",
        "usage": "/billing/usage/",
        "members": "/billing/members/",
    }


# The deepest elements reaching past the screen's right edge (to say what to fix).
WIDEST = """() => [...document.querySelectorAll("body *")]
  .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1
    && ![...el.children].some(c => c.getBoundingClientRect().right > window.innerWidth + 1))
  .slice(0, 4)
  .map(el => el.tagName.toLowerCase() + (el.className ? "." + String(el.className).split(" ").join(".") : "")
    + " " + Math.round(el.getBoundingClientRect().right))"""


SIGNED_OUT_PAGES = {"login": "/accounts/login/", "signup": "/accounts/signup/"}


def serious(results) -> list[str]:
    """axe's serious and critical violations, one line each: rule, impact, first elements."""
    found = []
    for violation in results.response["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = [" ".join(map(str, node["target"])) for node in violation["nodes"][:3]]
            found.append(f"{violation['id']} ({violation['impact']}): {targets}")
    return found


def check_page(page, axe, name: str, width: int, artifacts_dir, problems: list[str]) -> None:
    page.wait_for_load_state("load")
    for line in serious(axe.run(page)):
        problems.append(f"{name}@{width}: axe {line}")
    wide = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    if wide[0] > wide[1]:
        culprits = page.evaluate(WIDEST)
        problems.append(f"{name}@{width}: {wide[0]} px wide on a {wide[1]} px screen: {culprits}")
    h1 = page.locator("h1").count()
    if h1 != 1:
        problems.append(f"{name}@{width}: {h1} h1 elements")
    if page.locator(".skip-link").count() != 1:
        problems.append(f"{name}@{width}: no skip link")
    page.screenshot(path=str(artifacts_dir / f"a11y-{name}-{width}.png"), full_page=True)


def check_menu(page, name: str, width: int, problems: list[str]) -> None:
    """The header's links: on screen at 1440; behind the Menu button at 390."""
    links = page.locator("#site-nav a")
    toggle = page.locator(".nav-toggle")
    if width >= 1000:
        if toggle.is_visible() or not all(link.is_visible() for link in links.all()):
            problems.append(f"{name}@{width}: header links not all shown")
        return
    if not toggle.is_visible() or toggle.get_attribute("aria-expanded") != "false":
        problems.append(f"{name}@{width}: no closed Menu button")
        return
    toggle.click()
    if toggle.get_attribute("aria-expanded") != "true":
        problems.append(f"{name}@{width}: Menu does not say it is open")
    hidden = [
        link.inner_text()
        for link in links.all()
        if not link.is_visible() or link.bounding_box()["x"] + link.bounding_box()["width"] > width
    ]
    if hidden or links.count() < 2:
        problems.append(f"{name}@{width}: header links not reachable: {hidden}")
    # Escape closes it and gives the focus back to the button.
    page.keyboard.press("Escape")
    if toggle.get_attribute("aria-expanded") != "false" or not toggle.evaluate(
        "el => el === document.activeElement"
    ):
        problems.append(f"{name}@{width}: Escape does not close the menu onto its button")


def sign_in(page, base: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/inference/")


def test_every_page_is_accessible_and_fits_a_phone(
    a11y_world, live_server, chromium_executable, artifacts_dir
):
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    _, span_id = a11y_world
    axe = Axe()
    base = live_server.url
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable, args=LAUNCH_ARGS)
        try:
            for width, height in WIDTHS.items():
                context = browser.new_context(viewport={"width": width, "height": height})
                page = context.new_page()
                for name, path in SIGNED_OUT_PAGES.items():
                    page.goto(base + path)
                    check_page(page, axe, name, width, artifacts_dir, problems)
                sign_in(page, base)
                for name, path in signed_in_pages(span_id).items():
                    response = page.goto(base + path)
                    assert response.status == 200, (name, response.status)
                    check_page(page, axe, name, width, artifacts_dir, problems)
                    check_menu(page, name, width, problems)
                context.close()

            # The dark theme: the same pages, axe's contrast rule only.
            context = browser.new_context(
                viewport={"width": 1440, "height": 900}, color_scheme="dark"
            )
            page = context.new_page()
            contrast = {"runOnly": {"type": "rule", "values": ["color-contrast"]}}
            for name, path in SIGNED_OUT_PAGES.items():
                page.goto(base + path)
                for line in serious(axe.run(page, options=contrast)):
                    problems.append(f"{name}@dark: axe {line}")
            sign_in(page, base)
            for name, path in signed_in_pages(span_id).items():
                page.goto(base + path)
                page.wait_for_load_state("load")
                for line in serious(axe.run(page, options=contrast)):
                    problems.append(f"{name}@dark: axe {line}")
                if name in ("inference", "billing"):
                    page.screenshot(path=str(artifacts_dir / f"a11y-{name}-dark.png"))
            context.close()
        finally:
            browser.close()
    assert problems == [], "\n".join(problems)


def test_the_cards_are_toggle_buttons_and_say_each_models_health(
    a11y_world, live_server, chromium_executable
):
    from playwright.sync_api import expect, sync_playwright

    base = live_server.url
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            sign_in(page, base)
            served = page.locator(f'.model-card[data-model-id="{EMBEDDED_MODEL_ID}"]')
            down = page.locator(f'.model-card[data-model-id="{DOWN_MODEL}"]')
            degraded = page.locator(f'.model-card[data-model-id="{DEGRADED_MODEL}"]')
            expect(served.locator(".health")).to_have_text("Available")
            expect(degraded.locator(".health")).to_have_text("Degraded")
            expect(down.locator(".health")).to_have_text("Down: unavailable right now")

            # The toggle is a button: Space presses it, and it says so.
            toggle = page.get_by_role("button", name="Select SmolLM2 135M for comparison")
            toggle.focus()
            page.keyboard.press("Space")
            expect(toggle).to_have_attribute("aria-pressed", "true")
            expect(served).to_have_class("model-card selected")
            page.keyboard.press("Enter")
            expect(toggle).to_have_attribute("aria-pressed", "false")

            # A down model cannot be picked, and the page says why.
            down.locator(".select-mark").click(force=True)  # aria-disabled: still clickable
            expect(down.locator(".select-mark")).to_have_attribute("aria-pressed", "false")
            expect(page.locator("#selection-status")).to_contain_text("is unavailable right now")

            # The model page says the same.
            page.goto(f"{base}/inference/models/{DOWN_MODEL}")
            expect(page.locator(".health")).to_have_text("Down: unavailable right now")
            page.go_back()

            # The skip link is the first Tab stop and lands on the content.
            page.reload()
            page.keyboard.press("Tab")
            skip = page.get_by_role("link", name="Skip to content")
            expect(skip).to_be_focused()
            expect(skip).to_be_visible()
            page.keyboard.press("Enter")
            expect(page.locator("#content")).to_be_focused()
        finally:
            browser.close()
