"""The Traces pages in Debian's Chromium: filter the list (htmx, the URL follows), Back brings
the filter back, open a call: its span tree under an OpenTelemetry parent and its answer drawn
as Markdown. Screenshots at 1440x900 and 390x844 go to test-artifacts/."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.traces.page_world import MODEL, OTHER_MODEL, PASSWORD, make_member, record_call

pytestmark = pytest.mark.browser

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def traces_world(transactional_db):
    user, project = make_member("ada")
    now = timezone.now()
    for i in range(6):
        record_call(
            project,
            user=user,
            ago=timedelta(minutes=10 + i * 7),
            model=MODEL if i % 2 else OTHER_MODEL,
            source="playground" if i % 3 == 0 else "api",
            duration_ms=400 + 150 * i,
            prompt=f"Question number {i}",
            answer=f"Answer number {i}",
        )
    record_call(
        project,
        user=user,
        ago=timedelta(minutes=8),
        status="error",
        error_message="the engine closed the stream",
        completion_tokens=0,
    )
    trace_id = "5f" * 16
    parent = record_call(
        project,
        source="otel",
        op_name="run_chat",
        model="",
        started_at=now - timedelta(minutes=2),
        duration_ms=2400,
        ttft_ms=None,
        trace_id=trace_id,
        cost_micros=None,
        prompt_tokens=0,
        completion_tokens=0,
        inputs={"text": "What is 2+2? Answer in Markdown."},
    )
    child = record_call(
        project,
        user=user,
        started_at=now - timedelta(minutes=2) + timedelta(milliseconds=300),
        duration_ms=1800,
        ttft_ms=240,
        trace_id=trace_id,
        parent_span_id=parent.span_id,
        prompt="What is 2+2? Answer in Markdown.",
        answer="The answer is **4**.\n\n- two\n- plus two\n\n<img src=x onerror=alert(1)>",
        cost_micros=2_345,
        inputs={
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "What is 2+2? Answer in Markdown."},
            ],
            "temperature": 0.3,
            "max_tokens": 128,
            "stream": True,
        },
    )
    return user, project, parent, child


def _sign_in(page, base_url):
    page.goto(f"{base_url}/accounts/login/?next=/traces/")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/traces/")


def _fits(page, width):
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page is {scroll_width} px wide on a {width} px screen"


def test_filter_back_and_a_calls_tree(
    traces_world, live_server, chromium_executable, artifacts_dir
):
    from playwright.sync_api import expect, sync_playwright

    _, _, parent, child = traces_world
    base = live_server.url
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        try:
            _sign_in(page, base)
            rows = page.locator("tr.trace-row")
            expect(rows).to_have_count(9)
            expect(page.locator(".topnav a.active")).to_have_text("Traces")
            page.screenshot(path=str(artifacts_dir / "traces-list-1440.png"), full_page=True)

            # Filter by model: htmx swaps the rows and pushes the URL.
            page.fill("input[name=model]", OTHER_MODEL)
            page.press("input[name=model]", "Enter")
            page.wait_for_url("**/traces/?*model=microsoft%2FPhi-4-mini-instruct*")
            expect(rows).to_have_count(3)
            for text in rows.locator("td.trace-name").all_inner_texts():
                assert text.startswith(OTHER_MODEL)
            # And by status, a second pushed URL.
            page.select_option("select[name=status]", "ok")
            page.wait_for_url("**status=ok*")
            expect(rows).to_have_count(3)

            # Back: the URL with only the model, its rows and its form.
            assert "source=" not in page.url  # empty filters stay out of the URL
            page.go_back()
            page.wait_for_function("() => !location.search.includes('status=')")
            assert "model=microsoft%2FPhi-4-mini-instruct" in page.url
            expect(rows).to_have_count(3)
            expect(page.locator("input[name=model]")).to_have_value(OTHER_MODEL)
            expect(page.locator("select[name=status]")).to_have_value("")
            # Back again: no filter at all.
            page.go_back()
            page.wait_for_function("() => !location.search.includes('model=')")
            expect(rows).to_have_count(9)
            expect(page.locator("input[name=model]")).to_have_value("")

            # Filter by the other model, open a call from there and come Back to the filter.
            page.fill("input[name=model]", MODEL)
            page.press("input[name=model]", "Enter")
            page.wait_for_url("**model=meta-llama%2FLlama-3.1-8B-Instruct*")
            expect(rows).to_have_count(5)
            page.locator(f'[data-testid="call-{child.span_id}"] td').nth(3).click()  # the row
            page.wait_for_url(f"{base}/traces/{child.span_id}")
            page.go_back()
            page.wait_for_url("**/traces/?*model=meta-llama%2FLlama-3.1-8B-Instruct*")
            expect(rows).to_have_count(5)
            expect(page.locator("input[name=model]")).to_have_value(MODEL)
            page.go_forward()
            page.wait_for_url(f"{base}/traces/{child.span_id}")
            tree = page.get_by_test_id("waterfall")
            expect(tree.locator(".wf-row")).to_have_count(2)
            expect(tree.locator(".wf-row").first).to_contain_text("run_chat")
            expect(tree.locator(".wf-row.selected")).to_have_attribute("data-depth", "1")
            answer = page.locator(".trace-answer .msg-content")
            expect(answer.locator("strong")).to_have_text("4")
            expect(answer.locator("li")).to_have_count(2)
            assert answer.locator("img").count() == 0  # sanitized: no image, no handler
            expect(page.locator(".msg[data-role=system]")).to_contain_text("You are terse.")
            expect(page.get_by_test_id("call-cost")).to_have_text("$0.002345")
            expect(page.get_by_test_id("parameters")).to_contain_text("temperature")
            expect(page.get_by_test_id("open-in-playground")).to_have_attribute(
                "href", f"/playground/?from_call={child.span_id}"
            )
            expect(page.get_by_test_id("snippet-curl")).to_contain_text("$YARDSTICK_API_KEY")
            page.screenshot(path=str(artifacts_dir / "traces-call-1440.png"), full_page=True)

            # The parent span's own page: its row leads there from the tree.
            tree.locator(".wf-row").first.click()
            page.wait_for_url(f"{base}/traces/{parent.span_id}")
            expect(page.get_by_test_id("waterfall").locator(".wf-row.selected")).to_contain_text(
                "run_chat"
            )
            assert dialogs == [] and errors == []
        finally:
            browser.close()


def test_a_new_project_shows_how_to_make_a_first_call(
    transactional_db, live_server, chromium_executable, artifacts_dir
):
    from playwright.sync_api import expect, sync_playwright

    make_member("ada")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        try:
            _sign_in(page, live_server.url)
            expect(page.get_by_test_id("traces-empty")).to_contain_text("No calls in team-ada/main")
            expect(page.locator("#first-call-snippet")).to_contain_text("$YARDSTICK_API_KEY")
            _fits(page, 390)
            page.screenshot(path=str(artifacts_dir / "traces-empty-390.png"), full_page=True)
        finally:
            browser.close()


def test_the_pages_fit_a_phone(traces_world, live_server, chromium_executable, artifacts_dir):
    from playwright.sync_api import expect, sync_playwright

    _, _, _, child = traces_world
    base = live_server.url
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            _sign_in(page, base)
            expect(page.locator("tr.trace-row")).to_have_count(9)
            _fits(page, 390)
            page.screenshot(path=str(artifacts_dir / "traces-list-390.png"), full_page=True)
            page.goto(f"{base}/traces/{child.span_id}")
            expect(page.locator(".trace-answer strong")).to_have_text("4")
            _fits(page, 390)
            page.screenshot(path=str(artifacts_dir / "traces-call-390.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
