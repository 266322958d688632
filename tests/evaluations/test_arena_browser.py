"""The blind arena in Debian's Chromium against the product run for real (daphne, Celery eager,
the gateway; bench's fake engine behind it): a two-pane battle (no model in the page until the
vote, A wins, the reveal), a three-pane battle ranked by a second user, and the team's board
after both votes. Screenshots at 1440x900 and 390x844 go to test-artifacts/."""

import pytest
from playwright.sync_api import expect

from tests.support.stack import CLOSED_ENGINE_URL, Stack, sqlite_database_url

pytestmark = pytest.mark.browser

PASSWORD = "live-test-password"
FAST = "meta-llama/Llama-3.1-8B-Instruct"
FAST_2 = "microsoft/Phi-4-mini-instruct"
THIRD = "deepseek-ai/DeepSeek-V3-0324"
MODELS = {FAST: "Llama 3.1 8B", FAST_2: "Phi 4 Mini", THIRD: "DeepSeek V3-0324"}
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def fake_engine(tmp_path_factory):
    from tests.support.engines import start_fake_engine

    engine = start_fake_engine(
        var_dir=tmp_path_factory.mktemp("arena-engine"), tokens=12, tokens_per_second=60
    )
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_engine):
    var_dir = tmp_path_factory.mktemp("arena-stack")
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
                {
                    "username": "carol",
                    "organization": "acme",
                    "role": "member",
                    "concurrency_limit": 20,
                },
            ],
            "teams": [{"name": "acme", "organization": "acme", "members": ["alice", "carol"]}],
            "projects": [{"team": "acme", "name": "main", "default_for": ["alice", "carol"]}],
            "deployments": [
                {
                    "name": f"fake-{i}",
                    "model": model,
                    "base_url": fake_engine.base_url,
                    "upstream_model": "fast-model",
                }
                for i, model in enumerate(MODELS)
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


def new_page(browser, stack, width=1440, height=900):
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=stack.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.frames_seen = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: page.frames_seen.append(f)))
    return page


def sign_in(page, username):
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inference/")


def assert_blind(page):
    """Neither the page nor what its socket heard names a model or a price."""
    html = page.content()
    heard = "\n".join(str(frame) for frame in page.frames_seen)
    for model_id, name in MODELS.items():
        for text in (model_id, name, model_id.split("/")[1]):
            assert text not in html, f"{text!r} is in the page before the vote"
            assert text not in heard, f"{text!r} came over the socket before the vote"
    assert "cost_micros" not in heard


def fits(page, width):
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page is {scroll_width} px wide on a {width} px screen"


def test_two_pane_battle_vote_and_reveal(browser, stack, artifacts_dir):
    page = new_page(browser, stack)
    sign_in(page, "alice")
    # From Compare: "Blind battle" opens the set-up with Compare's models ticked.
    page.goto(f"/playground/compare?models={FAST},{FAST_2}")
    page.click("#blind-battle")
    page.wait_for_url("**/arena/new?models=*")
    expect(page.locator(f'input[name=models][value="{FAST}"]')).to_be_checked()
    expect(page.locator(f'input[name=models][value="{FAST_2}"]')).to_be_checked()
    expect(page.locator("input[name=mode][value=chosen]")).to_be_checked()
    page.click("#start-battle")
    page.wait_for_url("**/arena/battle/*")
    expect(page.locator(".pane")).to_have_count(2)
    expect(page.locator("[data-pane-name]")).to_have_text(["Model A", "Model B"])
    assert_blind(page)

    page.fill("#prompt", "Tell me something short")
    page.keyboard.press("Enter")
    expect(page.locator("#vote-pair")).to_be_visible()
    expect(page.locator(".msg-assistant .msg-content").first).to_contain_text("Lorem")
    expect(page.locator("#turn-count")).to_have_text("Turn 1")
    # A second turn before the vote.
    page.fill("#prompt", "And once more")
    page.keyboard.press("Enter")
    expect(page.locator("#turn-count")).to_have_text("Turn 2")
    expect(page.locator("#vote-pair")).to_be_visible()
    expect(page.locator(".msg-assistant")).to_have_count(4)
    assert_blind(page)
    page.screenshot(path=str(artifacts_dir / "arena-battle-1440.png"))

    page.click("#vote-pair [data-vote='0']")
    expect(page.locator("#vote-result")).to_have_text("Thanks — your vote counts.", timeout=30_000)
    names = page.locator("[data-pane-name]").all_inner_texts()
    assert sorted(n.split(": ", 1)[1] for n in names) == sorted([MODELS[FAST], MODELS[FAST_2]])
    assert names[0].startswith("Model A: ")
    expect(page.locator("#vote-pair")).to_be_hidden()
    expect(page.locator("#new-battle")).to_be_visible()
    expect(page.locator("[data-metrics]").first).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "arena-reveal-1440.png"))
    rows = stack.query("SELECT kind, turns, void FROM evaluations_arenavote")
    assert rows == [{"kind": "pair", "turns": 2, "void": 0}]

    # New battle: the same two models, a new match.
    page.click("#new-battle button")
    page.wait_for_url("**/arena/battle/*")
    expect(page.locator("[data-pane-name]")).to_have_text(["Model A", "Model B"])
    assert page.errors == []
    page.context.close()


def test_three_pane_battle_ranked_on_a_phone_then_the_board(browser, stack, artifacts_dir):
    page = new_page(browser, stack, 390, 844)
    sign_in(page, "carol")
    page.goto("/arena/new")
    fits(page, 390)
    page.screenshot(path=str(artifacts_dir / "arena-new-390.png"), full_page=True)
    page.select_option("select[name=n]", "3")
    page.click("#start-battle")
    page.wait_for_url("**/arena/battle/*")
    expect(page.locator(".pane")).to_have_count(3)
    assert_blind(page)
    page.fill("#prompt", "Which is best?")
    page.keyboard.press("Enter")
    expect(page.locator("#vote-best")).to_be_visible()
    expect(page.locator("[data-best]")).to_have_count(3)
    fits(page, 390)
    page.screenshot(path=str(artifacts_dir / "arena-battle-390.png"), full_page=True)

    page.click("#rank-toggle")
    ranks = page.locator("[data-rank]")
    for i, rank in enumerate(("2", "3", "1")):
        ranks.nth(i).select_option(rank)
    page.click("#rank-submit")
    # Celery is eager in this stack: the vote's request also refits the ratings (seconds).
    expect(page.locator("#vote-result")).to_contain_text("Thanks", timeout=30_000)
    expect(page.locator("[data-pane-model]").first).not_to_be_empty()
    fits(page, 390)
    page.screenshot(path=str(artifacts_dir / "arena-reveal-390.png"), full_page=True)
    vote = stack.query("SELECT outcome FROM evaluations_arenavote WHERE kind = 'ranking'")
    assert len(vote) == 1 and '"order": [2, 0, 1]' in vote[0]["outcome"]

    # The board after two users' votes (Celery runs eagerly in this stack).
    page.goto("/arena/")
    expect(page.locator("#arena-board tbody tr")).to_have_count(3)
    expect(page.locator("#arena-matrix")).to_be_visible()
    fits(page, 390)
    page.screenshot(path=str(artifacts_dir / "arena-board-390.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.screenshot(path=str(artifacts_dir / "arena-board-1440.png"), full_page=True)
    page.click("text=Organization")
    page.wait_for_url("**scope=organization")
    expect(page.locator("#arena-board tbody tr")).to_have_count(3)
    assert page.errors == []
    page.context.close()


def test_a_pane_whose_model_fails_ends_the_battle_without_naming_it(browser, stack):
    """A match (written here) with a model no engine serves: its pane's error does not name it,
    and the battle cannot be voted on, only replaced."""
    down = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
    alice = stack.query("SELECT id FROM auth_user WHERE username = 'alice'")[0]["id"]
    project = stack.query(
        "SELECT p.id, p.team_id, t.organization_id FROM inference_app_project p "
        "JOIN inference_app_team t ON t.id = p.team_id WHERE p.name = 'main'"
    )[0]
    match_id = "d0" * 16
    stack.execute(
        "INSERT INTO evaluations_arenamatch (id, organization_id, team_id, project_id, voter_id, "
        "pane_models, params, session_id, turns, prompt_hash, voted_at, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, '', 0, '', NULL, CURRENT_TIMESTAMP)",
        (
            match_id,
            project["organization_id"],
            project["team_id"],
            project["id"],
            alice,
            f'["{down}", "{FAST}"]',
            '{"max_tokens": 20}',
        ),
    )
    page = new_page(browser, stack)
    sign_in(page, "alice")
    page.goto(f"/arena/battle/{match_id}")
    page.fill("#prompt", "Hello")
    page.keyboard.press("Enter")
    expect(page.locator("#vote-help")).to_contain_text("Model A could not answer")
    error = page.locator(".msg-assistant.has-error .msg-error")
    expect(error).to_have_text("This model is not available right now: start a new battle.")
    expect(page.locator("#vote-pair")).to_be_hidden()
    expect(page.locator("#new-battle")).to_be_visible()
    html = page.content()
    heard = "\n".join(str(frame) for frame in page.frames_seen)
    for text in (down, "Llama-4", FAST, "Llama 3.1"):
        assert text not in html and text not in heard
    assert page.errors == []
    page.context.close()
