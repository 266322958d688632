"""A model's page: its request examples (curl, Python, streaming, JavaScript, /v1/models), each
with a copy button and no real key, and the styled 404 for a model the catalog does not have.
The browser test checks the tabs are highlighted and the page fits a phone."""

import html
import re

import pytest
from playwright.sync_api import expect

from tests.playground.conftest import make_member

SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
TABS = ["curl", "python", "streaming", "javascript", "models"]


@pytest.fixture
def signed_in(client, member):
    user, project = member
    client.force_login(user)
    return user, project


def _panels(page_html: str) -> dict[str, str]:
    found = re.findall(
        r'<div class="code-block code-example" id="example-(\w+)".*?<code[^>]*>(.*?)</code>',
        page_html,
        re.S,
    )
    return {tab: html.unescape(code) for tab, code in found}


def test_every_example_is_there_with_the_base_url_project_and_no_key(client, signed_in):
    _, project = signed_in
    page = client.get(f"/inference/models/{SCOUT}").content.decode()
    panels = _panels(page)
    assert list(panels) == TABS
    assert "curl http://testserver/v1/chat/completions" in panels["curl"]
    assert "client.chat.completions.create(" in panels["python"]
    assert "stream=True" in panels["streaming"] and "delta.content" in panels["streaming"]
    assert 'import OpenAI from "openai";' in panels["javascript"]
    assert 'baseURL: "http://testserver/v1"' in panels["javascript"]
    assert panels["models"].startswith("curl http://testserver/v1/models")
    for tab, code in panels.items():
        assert "YARDSTICK_API_KEY" in code, tab
        assert project.path in code, tab
        assert "sk-" not in code and "ys-" not in code, tab  # never a real key
        if tab != "models":
            assert f'"{SCOUT}"' in code, tab
    # One copy button per example, copying that example's text exactly.
    copies = re.findall(r'data-copy-text="([^"]*)" title="Copy ([^"]*) example"', page)
    assert [html.unescape(text) for text, _ in copies] == [panels[tab] for tab in TABS]


def test_examples_escape_a_hostile_project_name(client, db):
    user, project = make_member("mallory")
    project.name = "<script>x</script>"
    project.save()
    client.force_login(user)
    page = client.get(f"/inference/models/{SCOUT}").content.decode()
    assert "<script>x</script>" not in page


def test_an_unknown_model_gets_the_styled_404(client, signed_in):
    response = client.get("/inference/models/nope/missing-<b>model</b>")
    assert response.status_code == 404
    page = response.content.decode()
    assert "No model named <code>nope/missing-&lt;b&gt;model&lt;/b&gt;</code>" in page
    assert 'href="/inference/">Back to the models</a>' in page
    assert '<header class="topbar' in page or "topnav" in page  # the site's own layout


def test_any_other_missing_page_gets_the_styled_404(client, signed_in, settings):
    settings.DEBUG = False
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
    client.logout()
    response = client.get("/no/such/page/")  # signed out: the same page, without the app's links
    assert response.status_code == 404 and "Page not found" in response.content.decode()


# ---- in the browser -------------------------------------------------------------------------

PASSWORD = "live-test-password"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from tests.support.stack import CLOSED_ENGINE_URL, Stack, sqlite_database_url

    var_dir = tmp_path_factory.mktemp("model-pages")
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


def _signed_in_page(browser, stack, width, height):
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=stack.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto("/accounts/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inference/")
    return page


@pytest.mark.browser
def test_example_tabs_are_highlighted_and_switch(browser, stack, artifacts_dir):
    page = _signed_in_page(browser, stack, 1440, 900)
    page.goto(f"/inference/models/{SCOUT}")
    for tab in TABS:
        page.click(f'[data-example-tab="{tab}"]')
        panel = page.locator(f'[data-example="{tab}"]')
        expect(panel).to_be_visible()
        assert page.locator(".code-example:visible").count() == 1
        assert panel.locator("code.hljs").count() == 1
        assert panel.locator("code [class^='hljs-']").count() >= 2, tab
        assert "YARDSTICK_API_KEY" in panel.inner_text()
        expect(page.locator(f'[data-example-tab="{tab}"]')).to_have_attribute(
            "aria-selected", "true"
        )
    page.click('[data-example-tab="python"]')
    page.screenshot(path=artifacts_dir / "model-page-1440.png", full_page=True)
    assert page.errors == []
    page.context.close()


@pytest.mark.browser
def test_model_page_and_its_404_fit_a_phone(browser, stack, artifacts_dir):
    page = _signed_in_page(browser, stack, 390, 844)
    page.goto(f"/inference/models/{SCOUT}")
    page.locator("code.hljs").first.wait_for()
    for tab in TABS:
        page.click(f'[data-example-tab="{tab}"]')
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, tab
    page.click('[data-example-tab="curl"]')
    page.screenshot(path=artifacts_dir / "model-page-390.png", full_page=True)
    response = page.goto("/inference/models/nope/missing")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("No model named nope/missing")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=artifacts_dir / "model-404-390.png")
    page.click("text=Back to the models")
    page.wait_for_url("**/inference/")
    assert page.errors == []
    page.context.close()
