"""Leaderboards in Debian's Chromium against the product run for real (daphne, Celery eager, the
gateway; bench's fake engine behind it). An evaluation is made through the API as a script
would; then the pages: the list, a new leaderboard from the form, the table (intervals, best
per column, sorting by a header), the quality-against-cost and latency charts with the "good
enough" model. Screenshots at 1440x900 and 390x844 go to test-artifacts/."""

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.stack import CLOSED_ENGINE_URL, Stack, sqlite_database_url

pytestmark = pytest.mark.browser

PASSWORD = "live-test-password"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
PHI = "microsoft/Phi-4-mini-instruct"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# The fake engine says "Lorem ipsum dolor sit" in 4 tokens, "Lorem ipsum" in 2. Long prompts,
# so the two models' prices (Llama's input costs more) make costs per item far apart.
CONTEXT = " Some context." * 100
ROWS = [
    {"input": f"Question {n}?{CONTEXT}", "expected": "Lorem ipsum dolor sit"} for n in range(4)
] + [{"input": f"Short {n}?{CONTEXT}", "expected": "Lorem ipsum"} for n in range(2)]


@pytest.fixture(scope="module")
def fake_engine(tmp_path_factory):
    from tests.support.engines import start_fake_engine

    engine = start_fake_engine(var_dir=tmp_path_factory.mktemp("lb-engine"), tokens=4)
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_engine):
    var_dir = tmp_path_factory.mktemp("lb-stack")
    live = Stack(
        database_url=sqlite_database_url(var_dir),
        var_dir=var_dir,
        embedded_engine_url=CLOSED_ENGINE_URL,
    )
    try:
        live.migrate()
        live.seed(
            {
                "organizations": [{"slug": "acme", "plan": "free"}],
                "users": [
                    {"username": "alice", "organization": "acme", "role": "admin"},
                ],
                "teams": [{"name": "acme", "organization": "acme", "members": ["alice"]}],
                "projects": [{"team": "acme", "name": "main", "default_for": ["alice"]}],
                "deployments": [
                    {
                        "name": f"fake-{i}",
                        "model": model,
                        "base_url": fake_engine.base_url,
                        "upstream_model": "fast-model",
                    }
                    for i, model in enumerate((LLAMA, PHI))
                ],
                "api_keys": [{"label": "alice", "user": "alice"}],
            }
        )
        live.start_servers(1)
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def board(stack):
    """A dataset, an evaluation of both models (run inside the request: Celery is eager in
    this stack) and a leaderboard, through the API as a script would."""
    headers = {"Authorization": f"Bearer {stack.api_keys['alice']}", "OpenAI-Project": "acme/main"}
    with httpx.Client(base_url=f"{stack.url}/v1", headers=headers, timeout=60) as client:
        assert client.post("/datasets", json={"name": "qa", "rows": ROWS}).status_code == 201
        response = client.post(
            "/evaluations",
            json={
                "name": "QA",
                "dataset": "qa",
                "models": [
                    {"model": LLAMA, "params": {"max_tokens": 4}},
                    {"model": PHI, "params": {"max_tokens": 2}},
                ],
                "scorers": [{"name": "exact_match", "scorer": "exact_match"}],
            },
        )
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "completed"
        response = client.post(
            "/leaderboards",
            json={
                "name": "Board",
                "description": "Two models on the QA set",
                "columns": [
                    {"evaluation": "QA", "scorer": "exact_match", "metric": "mean"},
                    {"evaluation": "QA", "metric": "cost_per_item"},
                    {"evaluation": "QA", "metric": "latency_p50"},
                ],
            },
        )
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture(scope="module")
def browser(chromium_executable):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable, args=LAUNCH_ARGS)
        yield browser
        browser.close()


def new_page(browser, stack, width=1440, height=900):
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


def column_texts(page, index: int) -> list[str]:
    return page.locator(f"#leaderboard-table tbody tr td:nth-child({index + 1})").all_inner_texts()


def test_the_leaderboard_page(browser, stack, board, artifacts_dir):
    table = board
    assert {row["model"] for row in table["rows"]} == {LLAMA, PHI}
    by_model = {row["model"]: row for row in table["rows"]}
    llama_mean = by_model[LLAMA]["cells"][0]
    assert llama_mean["value"] == pytest.approx(4 / 6)
    assert by_model[PHI]["cells"][0]["value"] == pytest.approx(2 / 6)

    page = new_page(browser, stack)
    page.goto(f"/leaderboards/{table['id']}")
    expect(page.locator("h1")).to_have_text("Board")
    models = page.locator("#leaderboard-table tbody td:first-child code")
    # Best first by the first column (higher is better).
    expect(models).to_have_text([LLAMA, PHI])
    interval = f"0.67 [{llama_mean['low']:.2f}, {llama_mean['high']:.2f}]"
    expect(page.locator("#leaderboard-table tbody tr").first).to_contain_text(interval)
    # The best of each column is marked (★ via CSS): the mean's is Llama's.
    best = page.locator("#leaderboard-table tbody tr").first.locator("td").nth(1)
    expect(best).to_have_class("num best")

    # Sort by cost (lower is better: the first click puts the cheapest first), then reverse.
    cost_header = page.locator("#leaderboard-table thead th").nth(2)
    cost_header.locator("button").click()
    expect(cost_header).to_have_attribute("aria-sort", "ascending")
    costs = [by_model[m]["cells"][1]["value"] for m in (LLAMA, PHI)]
    assert costs[0] > costs[1] * 1.5, costs
    cheapest_first = [m for _, m in sorted(zip(costs, (LLAMA, PHI), strict=True))]
    expect(models).to_have_text(cheapest_first)
    cost_header.locator("button").click()
    expect(cost_header).to_have_attribute("aria-sort", "descending")
    expect(models).to_have_text(list(reversed(cheapest_first)))
    # Sort by model name.
    page.locator("#leaderboard-table thead th").first.locator("button").click()
    expect(models).to_have_text(sorted([LLAMA, PHI]))

    # The charts: one point per model on each, the good-enough model highlighted.
    for canvas in ("lb-cost-chart", "lb-latency-chart"):
        points = page.evaluate(
            f"Chart.getChart(document.getElementById('{canvas}')).data.datasets"
            ".map(d => [d.data[0].model, d.data[0].good])"
        )
        assert sorted(points) == sorted([[p["model"], p["good_enough"]] for p in table["chart"]]), (
            canvas
        )
    assert table["good_enough_model"] in (LLAMA, PHI)
    expect(page.get_by_test_id("good-enough")).to_contain_text(table["good_enough_model"])
    assert page.errors == []
    page.screenshot(path=str(artifacts_dir / "leaderboard-1440.png"), full_page=True)

    phone = new_page(browser, stack, width=390, height=844)
    phone.goto(f"/leaderboards/{table['id']}")
    expect(phone.locator("#leaderboard-table")).to_be_visible()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px screen"
    phone.screenshot(path=str(artifacts_dir / "leaderboard-390.png"), full_page=True)
    assert phone.errors == []


def test_a_new_leaderboard_from_the_form(browser, stack, board, artifacts_dir):
    page = new_page(browser, stack)
    page.goto("/leaderboards/")
    expect(page.get_by_test_id("leaderboard-list")).to_contain_text("Board")
    page.fill("input[name=name]", "Pass rates")
    first = page.locator("#lb-columns .lb-column").first
    expect(first.locator("[data-field=evaluation]")).to_have_value("QA")
    expect(first.locator("[data-field=scorer]")).to_have_value("exact_match")
    first.locator("[data-field=metric]").select_option("pass_rate")
    page.click("#lb-add-column")
    second = page.locator("#lb-columns .lb-column").nth(1)
    second.locator("[data-field=metric]").select_option("cost_per_item")
    # Cost: lower is better, ticked for the user.
    expect(second.locator("[data-field=minimize]")).to_be_checked()
    page.screenshot(path=str(artifacts_dir / "leaderboard-new.png"), full_page=True)
    page.click("button:has-text('Create leaderboard')")
    page.wait_for_url(re.compile(r"/leaderboards/\d+$"))
    expect(page.locator("h1")).to_have_text("Pass rates")
    headers = page.locator("#leaderboard-table thead th button")
    expect(headers).to_have_text(["Model", "QA · exact_match · Pass rate", "QA · Cost per item"])
    expect(page.locator("#leaderboard-table tbody tr")).to_have_count(2)
    assert page.errors == []
    # Edit it: the form holds its columns; remove the cost column and rename it.
    page.click("a:has-text('Edit')")
    page.wait_for_url(re.compile(r"/leaderboards/\d+/edit$"))
    columns = page.locator("#lb-columns .lb-column")
    expect(columns).to_have_count(2)
    expect(columns.nth(0).locator("[data-field=metric]")).to_have_value("pass_rate")
    expect(columns.nth(1).locator("[data-field=metric]")).to_have_value("cost_per_item")
    columns.nth(1).locator("[data-remove-column]").click()
    page.fill("input[name=name]", "Pass rate only")
    page.click("button:has-text('Save')")
    page.wait_for_url(re.compile(r"/leaderboards/\d+$"))
    expect(page.locator("h1")).to_have_text("Pass rate only")
    expect(page.locator("#leaderboard-table thead th button")).to_have_text(
        ["Model", "QA · exact_match · Pass rate"]
    )
    assert page.errors == []
