"""Datasets and evaluations in Debian's Chromium, on daphne (the progress bar is a websocket):
upload a dataset and read its preview, open a new evaluation and see its estimate, start it,
watch the progress bar move as predictions land (written by the test: no runner here), then
read the matrix with its intervals and a paired comparison. Screenshots at 1440x900 and
390x844 go to test-artifacts/; no page is wider than a 390 px phone."""

from __future__ import annotations

import re
from functools import partial

import pytest
from django.db import connections
from django.test import Client

from evaluations.models import Evaluation, Prediction
from evaluations.selectors import BOOTSTRAP_SEED
from evaluations.stats import mean_ci
from tests.evaluations.test_pages import LLAMA, PHI, serve
from tests.traces.page_world import make_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DATASET = (
    '{"input": "What is the capital of France?", "expected": "Paris"}\n'
    '{"input": "What is 2 + 2?", "expected": "4"}\n'
    '{"input": "Which planet is called the Red Planet?", "expected": "Mars"}\n'
    '{"input": "Who wrote <i>Hamlet</i>?", "expected": "Shakespeare"}\n'
)
ANSWERS = {
    0: ["Paris", "Paris."],
    1: ["4", "Four"],
    2: ["Mars", "Jupiter"],
    3: ["William Shakespeare", "<script>alert(1)</script>"],
}
EXPECTED = ["Paris", "4", "Mars", "Shakespeare"]


def _child_setup():
    """In daphne's process: the test database, and no Celery queue (the test plays the
    runner)."""
    from channels.testing.live import set_database_connection

    import evaluations.runs

    set_database_connection()
    evaluations.runs._enqueue = lambda prediction_ids: None
    # A fork copies asgiref's one-thread executor but not its thread: after tests in this
    # process that used it (async consumer tests), sync_to_async would wait forever.
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import SyncToAsync

    SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)


@pytest.fixture
def daphne_url(transactional_db):
    from channels.testing.live import make_application
    from daphne.testing import DaphneProcess
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    connections.close_all()  # the child must not share the parent's SQLite handle
    server = DaphneProcess(
        "127.0.0.1",
        partial(make_application, static_wrapper=ASGIStaticFilesHandler),
        setup=_child_setup,
    )
    server.start()
    if not server.ready.wait(timeout=20):
        raise RuntimeError("daphne did not start")
    yield f"http://127.0.0.1:{server.port.value}"
    server.terminate()
    server.join(5)


def _fits(page, width):
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{page.url} is {scroll_width} px wide on a {width} px screen"


def _shot(page, path):
    page.evaluate("window.scrollTo(0, 0)")  # else the sticky header lands mid-picture
    page.screenshot(path=str(path), full_page=True)


def _land(evaluation, row, model_index):
    """What the runner writes when a prediction is scored."""
    output = ANSWERS[row][model_index]
    passed = output.rstrip(".").lower() == EXPECTED[row].lower()
    Prediction.objects.filter(
        evaluation=evaluation, row_index=row, model_index=model_index, trial=0
    ).update(
        status=Prediction.Status.DONE,
        output=output,
        scores={"exact_match": {"score": float(passed), "passed": passed, "reason": "t"}},
        latency_ms=300 + 200 * model_index + 10 * row,
        cost_micros=1500 + 500 * model_index,
    )
    Evaluation.objects.filter(pk=evaluation.pk).update(
        spent_micros=sum(
            Prediction.objects.filter(evaluation=evaluation).values_list("cost_micros", flat=True)
        )
    )


def test_upload_estimate_start_watch_and_read(
    daphne_url, chromium_executable, artifacts_dir, tmp_path, monkeypatch
):
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls made here (the
    # test playing the runner) are plain blocking ones all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    serve(LLAMA, PHI)
    user, project = make_member("ada")
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    dataset_file = tmp_path / "capitals.jsonl"
    dataset_file.write_text(DATASET)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable, args=LAUNCH_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.add_cookies([{"name": "sessionid", "value": session, "url": daphne_url}])
        page = context.new_page()
        errors, dialogs = [], []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        try:
            page.goto(f"{daphne_url}/evaluations/")
            expect(page.locator(".topnav a.active")).to_have_text("Evals")
            page.click("[data-testid=upload-dataset]")
            page.fill("input[name=name]", "capitals")
            page.set_input_files("input[name=file]", str(dataset_file))
            page.click("[data-testid=upload]")
            page.wait_for_url("**/evaluations/datasets/*")
            expect(page.locator("[data-testid=created]")).to_contain_text("4 rows")
            expect(page.locator("[data-testid=column]")).to_have_text(["input", "expected"])
            expect(page.locator("[data-testid=preview] tbody tr")).to_have_count(4)
            # The dataset's text is shown as text.
            expect(page.locator("[data-testid=preview]")).to_contain_text("<i>Hamlet</i>")
            page.screenshot(
                path=str(artifacts_dir / "evaluations-dataset-1440.png"), full_page=True
            )

            page.click("text=New evaluation on v1")
            page.wait_for_url("**/evaluations/new?version=*")
            page.fill("input[name=name]", "capitals-exact")
            page.check(f"input[name=model][value='{LLAMA}']")
            page.check(f"input[name=model][value='{PHI}']")
            expect(page.locator("[data-testid=estimate-calls]")).to_have_text("8")
            expect(page.locator("[data-testid=estimate-judge-calls]")).to_have_text("0")
            # A judge: one more call per answer.
            page.check("input[name=scorer][value=llm_judge]")
            page.fill("textarea[name=arg__llm_judge__rubric]", "The answer names the right thing.")
            expect(page.locator("[data-testid=estimate-judge-calls]")).to_have_text("8")
            expect(page.locator("[data-testid=estimate-calls]")).to_have_text("16")
            page.uncheck("input[name=scorer][value=llm_judge]")
            expect(page.locator("[data-testid=estimate-calls]")).to_have_text("8")
            page.fill("[data-testid=budget]", "0.000001")
            expect(page.locator("[data-testid=budget-warning]")).to_be_visible()
            page.fill("[data-testid=budget]", "5")
            expect(page.locator("[data-testid=budget-warning]")).to_have_count(0)
            cost = page.locator("[data-testid=estimate-cost]").inner_text()
            assert cost.startswith("$")
            _shot(page, artifacts_dir / "evaluations-new-1440.png")

            page.click("[data-testid=start]")
            page.wait_for_url(re.compile(r"/evaluations/\d+$"))
            evaluation = Evaluation.objects.get()
            assert evaluation.status == Evaluation.Status.RUNNING
            assert evaluation.budget_micros == 5_000_000
            expect(page.locator("[data-testid=done]")).to_have_text("0")
            expect(page.locator("[data-live-state]")).to_have_text("Live")
            expect(page.locator("[data-testid=results]")).to_contain_text(
                "Results appear here as the answers come in."
            )

            # The runner's work, from this thread: the bar follows over the websocket.
            for row in range(4):
                _land(evaluation, row, 0)
            expect(page.locator("[data-testid=done]")).to_have_text("4")
            width = page.eval_on_selector("[data-bar-fill]", "el => el.style.width")
            assert width == "50%"
            expect(page.locator("[data-testid=spent]")).to_have_text("$0.006")
            # Results appear as the answers come in (htmx refresh).
            expect(page.locator("tr[data-row='2'] .eval-output").first).to_have_text("Mars")
            expect(page.locator("[data-testid=summary-0] [data-testid=mean]")).to_have_text("0.75")
            expect(page.locator("[data-testid=matrix] tbody tr")).to_have_count(4)
            page.screenshot(
                path=str(artifacts_dir / "evaluations-running-1440.png"), full_page=True
            )

            for row in range(4):
                _land(evaluation, row, 1)
            Evaluation.objects.filter(pk=evaluation.pk).update(status=Evaluation.Status.COMPLETED)
            expect(page.locator("[data-testid=status]")).to_have_text("Completed")
            expect(page.locator("[data-testid=done]")).to_have_text("8")
            expect(page.locator("[data-testid=cancel]")).to_be_hidden()

            # The matrix with intervals: llama 3/4 (its Shakespeare has a first name), phi 1/4.
            llama = page.locator("[data-testid=summary-0]")
            phi = page.locator("[data-testid=summary-1]")
            expect(llama.locator("[data-testid=mean]")).to_have_text("0.75")
            expect(phi.locator("[data-testid=mean]")).to_have_text("0.25")
            for model, scores in ((llama, [1, 1, 1, 0]), (phi, [1, 0, 0, 0])):
                _, low, high = mean_ci(scores, seed=BOOTSTRAP_SEED)
                expect(model.locator("[data-testid=ci]")).to_have_text(f"[{low:.2f}, {high:.2f}]")
            expect(phi).to_contain_text("25% pass")
            expect(llama.locator("[data-testid=cost-per-item]")).to_have_text("$0.0015/item")
            expect(page.locator("[data-testid=verdict]")).to_have_count(1)
            # Output is text: the hostile answer shows as typed, nothing runs.
            expect(page.locator("tr[data-row='3'] .eval-output").nth(1)).to_have_text(
                "<script>alert(1)</script>"
            )
            page.screenshot(
                path=str(artifacts_dir / "evaluations-results-1440.png"), full_page=True
            )

            # Filters: failures only (items 1, 2, 3: phi failed them).
            page.check("input[name=failures]")
            page.wait_for_url("**failures=1*")
            expect(page.locator("[data-testid=matrix] tbody tr")).to_have_count(3)
            # Diff vs expected: the missing and extra words are marked.
            page.check("[data-diff-toggle]")
            expect(
                page.locator("tr[data-row='3'] .eval-output").first.locator("ins")
            ).to_have_count(2)
            expect(
                page.locator("tr[data-row='2'] .eval-output").nth(1).locator("del")
            ).to_have_text("Mars")

            # A phone.
            page.set_viewport_size({"width": 390, "height": 844})
            page.reload()
            expect(page.locator("[data-testid=matrix]")).to_be_visible()
            _fits(page, 390)
            _shot(page, artifacts_dir / "evaluations-results-390.png")
            for path in (
                "/evaluations/",
                "/evaluations/new",
                f"/evaluations/datasets/{evaluation.dataset_version.dataset_id}",
            ):
                page.goto(f"{daphne_url}{path}")
                _fits(page, 390)
            page.goto(f"{daphne_url}/evaluations/new")
            page.check(f"input[name=model][value='{LLAMA}']")
            expect(page.locator("[data-testid=estimate-calls]")).to_have_text("4")
            _shot(page, artifacts_dir / "evaluations-new-390.png")
            page.goto(f"{daphne_url}/evaluations/")
            _shot(page, artifacts_dir / "evaluations-list-390.png")
            # The header's links fold under Menu on a phone; opened, each fits the width.
            expect(page.locator(".topnav")).to_be_hidden()
            page.get_by_role("button", name="Menu").click()
            expect(page.locator(".topnav a")).to_have_count(5)
            for link in page.locator(".topnav a").all():
                box = link.bounding_box()
                assert box and box["x"] + box["width"] <= 390, link.inner_text()
            _shot(page, artifacts_dir / "header-menu-390.png")
            page.set_viewport_size({"width": 1440, "height": 900})
            _shot(page, artifacts_dir / "evaluations-list-1440.png")
        finally:
            browser.close()
    assert errors == [] and dialogs == []
