"""The Traces pages: the list (filters in the URL, keyset pages, htmx rows) and a call's page
(span tree, conversation, figures, code), on rows written by traces.services.calls_record."""

import json
import shlex
from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from tests.traces.page_world import (
    MODEL,
    OTHER_MODEL,
    PASSWORD,
    listed,
    make_member,
    record_call,
)
from traces.forms import CallFilterForm
from traces.models import Call
from traces.selectors import CallFilters, Cursor, calls_page
from traces.snippets import call_as_curl, call_as_python

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client):
    user, project = make_member("alice")
    client.login(username="alice", password=PASSWORD)
    return user, project


# --- the list -------------------------------------------------------------------------------
def test_the_list_shows_the_projects_calls_newest_first(client, alice):
    user, project = alice
    old = record_call(project, ago=timedelta(hours=3), user=user)
    new = record_call(project, ago=timedelta(minutes=1), user=user, cost_micros=None)
    response = client.get("/traces/")
    assert response.status_code == 200
    assert listed(response) == [new.span_id, old.span_id]
    html = response.content.decode()
    assert MODEL in html and "alice" in html and "$0.001234" in html
    assert "12 / 34" in html and "800 ms" in html and "120 ms" in html
    assert "—" in html  # the call without a cost
    # The header's link.
    assert '<a href="/traces/" class="active" aria-current="page">Traces</a>' in html


def test_an_empty_project_tells_how_to_make_a_first_call(client, alice):
    response = client.get("/traces/")
    html = response.content.decode()
    assert 'data-testid="traces-empty"' in html
    assert "$YARDSTICK_API_KEY" in html and "OpenAI-Project: team-alice/main" in html
    assert 'href="/playground/"' in html


@pytest.mark.parametrize(
    ("query", "wanted", "other"),
    [
        ({"model": OTHER_MODEL}, {"model": OTHER_MODEL}, {}),
        ({"source": "playground"}, {"source": "playground"}, {}),
        ({"status": "error"}, {"status": "error"}, {}),
        ({"min_latency_ms": "5000"}, {"duration_ms": 9000}, {"duration_ms": 4999}),
        ({"min_cost": "0.01"}, {"cost_micros": 10_000}, {"cost_micros": 9_999}),
        ({"range": "1h"}, {"ago": timedelta(minutes=30)}, {"ago": timedelta(hours=2)}),
        ({"range": "30d"}, {"ago": timedelta(days=20)}, {"ago": timedelta(days=40)}),
        ({"q": "Kenobi"}, {"answer": "Hello there, general KENOBI"}, {"answer": "Hi"}),
        ({"q": "lighthouse"}, {"prompt": "Describe a lighthouse"}, {"prompt": "Describe a cat"}),
    ],
)
def test_each_filter_narrows_the_list(client, alice, query, wanted, other):
    _, project = alice
    hit = record_call(project, **wanted)
    miss = record_call(project, **{"ago": timedelta(minutes=2), **other})
    everything = listed(client.get("/traces/", {"since": "2000-01-01T00:00"}))
    assert sorted(everything) == sorted([hit.span_id, miss.span_id])
    assert listed(client.get("/traces/", query)) == [hit.span_id]


def test_the_default_range_is_seven_days(client, alice):
    _, project = alice
    recent = record_call(project, ago=timedelta(days=6))
    record_call(project, ago=timedelta(days=8))
    assert listed(client.get("/traces/")) == [recent.span_id]


def test_the_user_filter(client, alice):
    user, project = alice
    bob, _ = make_member("bob", org=project.team.organization, team=project.team)
    mine = record_call(project, user=user)
    record_call(project, user=bob)
    response = client.get("/traces/", {"user": user.pk})
    assert listed(response) == [mine.span_id]
    assert ">bob</option>" in response.content.decode()  # the team's people are offered


def test_since_and_until(client, alice):
    _, project = alice
    now = timezone.now().astimezone(UTC).replace(microsecond=0)
    inside = record_call(project, started_at=now - timedelta(hours=5))
    record_call(project, started_at=now - timedelta(hours=7))
    record_call(project, started_at=now - timedelta(hours=3))
    since = (now - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M")
    until = (now - timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M")
    assert listed(client.get("/traces/", {"since": since, "until": until})) == [inside.span_id]


def test_a_bad_filter_says_so_and_shows_the_default_range(client, alice):
    _, project = alice
    call = record_call(project)
    response = client.get("/traces/", {"min_latency_ms": "-5", "before": "nonsense"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="alert"' in html and "Showing the last 7 days." in html
    assert listed(response) == [call.span_id]


def test_keyset_pages_have_no_row_twice_and_miss_none(client, alice):
    _, project = alice
    now = timezone.now()
    # 55 calls; ten share one start time, so the span id breaks ties.
    same = now - timedelta(minutes=30)
    spans = {record_call(project, started_at=same).span_id for _ in range(10)}
    spans |= {record_call(project, ago=timedelta(minutes=i + 1)).span_id for i in range(45)}
    first = client.get("/traces/")
    page_one = listed(first)
    assert len(page_one) == 50
    older = first.content.decode().split('data-testid="older" href="')[1].split('"')[0]
    second = client.get(older.replace("&amp;", "&"))
    page_two = listed(second)
    assert len(page_two) == 5
    assert set(page_one) | set(page_two) == spans and not set(page_one) & set(page_two)
    assert 'data-testid="older"' not in second.content.decode()
    # New calls arriving meanwhile do not shift the second page.
    record_call(project, ago=timedelta(seconds=1))
    assert listed(client.get(older.replace("&amp;", "&"))) == page_two


def test_the_selector_pages_by_keyset_with_filters():
    _, project = make_member("carol")
    now = timezone.now()
    for i in range(7):
        record_call(project, ago=timedelta(minutes=i), model=MODEL if i % 2 else OTHER_MODEL)
    filters = CallFilters(since=now - timedelta(days=1), model=MODEL)
    seen, cursor = [], None
    while True:
        page = calls_page(project_id=project.pk, filters=filters, cursor=cursor, limit=2)
        seen += page.calls
        if page.next_cursor is None:
            break
        cursor = Cursor.parse(str(page.next_cursor))
    assert [c.model for c in seen] == [MODEL] * 3
    assert [c.started_at for c in seen] == sorted((c.started_at for c in seen), reverse=True)


def test_the_filters_stay_in_the_older_link(client, alice):
    _, project = alice
    for i in range(51):
        record_call(project, ago=timedelta(minutes=i + 1), model=OTHER_MODEL)
    html = client.get("/traces/", {"model": OTHER_MODEL}).content.decode()
    older = html.split('data-testid="older" href="')[1].split('"')[0]
    assert "model=microsoft%2FPhi-4-mini-instruct" in older and "before=" in older


def test_an_htmx_request_gets_only_the_rows(client, alice):
    _, project = alice
    call = record_call(project)
    response = client.get("/traces/", {"model": MODEL}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="rows"')
    assert "<html" not in html and 'id="trace-filters"' not in html
    assert listed(response) == [call.span_id]
    # One URL, two answers: a browser must not show cached rows alone on Back.
    assert "HX-Request" in response["Vary"]
    # Back after a pushed URL: htmx asks for the whole page.
    restore = client.get(
        "/traces/",
        {"model": MODEL},
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in restore.content.decode()


def test_the_form_keeps_the_url_state(client, alice):
    html = client.get("/traces/", {"model": OTHER_MODEL, "status": "error", "q": "kenobi"})
    html = html.content.decode()
    assert f'value="{OTHER_MODEL}"' in html
    assert '<option value="error" selected>' in html
    assert 'value="kenobi"' in html
    assert 'hx-push-url="true"' in html


def test_the_form_turns_dollars_into_micro_dollars():
    form = CallFilterForm({"min_cost": "0.000123", "range": "24h"})
    assert form.is_valid(), form.errors
    filters = form.filters()
    assert filters.min_cost_micros == 123
    assert timezone.now() - filters.since < timedelta(hours=24, seconds=5)


# --- a call's page --------------------------------------------------------------------------
def test_a_calls_page_shows_the_conversation_answer_and_figures(client, alice):
    user, project = alice
    call = record_call(
        project,
        user=user,
        prompt="What is **2+2**?",
        answer="It is <script>alert(1)</script> **4**.",
        cost_micros=1_234_567,
    )
    response = client.get(f"/traces/{call.span_id}")
    assert response.status_code == 200
    html = response.content.decode()
    # Model output reaches the page only as JSON for the sanitizing renderer, never as HTML.
    assert "<script>alert(1)</script>" not in html
    data = html.split('id="trace-conversation" type="application/json">')[1].split("</script>")[0]
    assert "\\u003Cscript\\u003Ealert(1)\\u003C/script\\u003E **4**." in data
    assert "What is **2+2**?" in data
    assert "$1.234567" in html  # exact, from the ledger's figure
    assert call.request_id in html and call.trace_id in html and "fake-fast" in html
    assert "temperature" in html and "0.7" in html and "max_tokens" in html
    assert f'href="/playground/?from_call={call.span_id}"' in html
    assert "46" in html  # 12 + 34 tokens


def test_a_call_without_a_cost_shows_a_dash(client, alice):
    _, project = alice
    call = record_call(project, cost_micros=None)
    html = client.get(f"/traces/{call.span_id}").content.decode()
    assert 'data-testid="call-cost" title="—">—</dd>' in html


def test_a_call_without_bodies_says_so(client, alice):
    _, project = alice
    call = record_call(project, bodies=False)
    assert not Call.objects.get(span_id=call.span_id).has_body
    response = client.get(f"/traces/{call.span_id}")
    html = response.content.decode()
    assert 'data-testid="no-body"' in html and "were not stored" in html
    assert "Open in Playground" not in html and 'id="trace-conversation"' not in html


def test_a_failed_call_shows_its_error(client, alice):
    _, project = alice
    call = record_call(project, status="error", error_message="upstream closed the stream")
    html = client.get(f"/traces/{call.span_id}").content.decode()
    assert 'data-testid="call-error"' in html and "upstream closed the stream" in html


def test_the_span_tree_puts_the_gateway_call_under_its_otel_parent(client, alice):
    _, project = alice
    now = timezone.now() - timedelta(minutes=3)
    trace_id = "ab" * 16
    root = record_call(
        project,
        source="otel",
        op_name="run_chat",
        model="",
        started_at=now,
        duration_ms=2000,
        trace_id=trace_id,
        cost_micros=None,
        inputs={"text": "user question"},
    )
    child = record_call(
        project,
        started_at=now + timedelta(milliseconds=500),
        duration_ms=1000,
        trace_id=trace_id,
        parent_span_id=root.span_id,
    )
    html = client.get(f"/traces/{child.span_id}").content.decode()
    tree = html.split('data-testid="waterfall"')[1]
    assert tree.index(f"span-{root.span_id}") < tree.index(f"span-{child.span_id}")
    child_row = tree.split(f'data-testid="span-{child.span_id}"')[0].rsplit("<a ", 1)[1]
    assert 'data-depth="1"' in child_row and "selected" in child_row
    child_bar = tree.split(f'data-testid="span-{child.span_id}"')[1].split("</a>")[0]
    assert "left: 25.00%; width: 50.00%" in child_bar
    assert "2 spans" in html
    # The OTLP span's page: its input as JSON, no chat actions.
    root_html = client.get(f"/traces/{root.span_id}").content.decode()
    assert "user question" in root_html and "Open in Playground" not in root_html


def test_the_seed_link_shape_redirects_to_the_call(client, alice):
    _, project = alice
    call = record_call(project)
    response = client.get(f"/team-alice/main/r/call/{call.span_id}")
    assert response.status_code == 302 and response["Location"] == f"/traces/{call.span_id}"


def test_the_code_snippets_run_the_same_request_without_a_key(client, alice):
    _, project = alice
    inputs = {
        "model": MODEL,
        "messages": [{"role": "user", "content": 'It\'s a "quoted" $HOME test'}],
        "temperature": 0.2,
        "stream": False,
    }
    call = record_call(project, inputs=inputs)
    html = client.get(f"/traces/{call.span_id}").content.decode()
    assert "$YARDSTICK_API_KEY" in html and "Copy as curl" in html and "Copy as Python" in html

    curl = call_as_curl(inputs, "team-alice/main", "http://testserver/v1")
    words = shlex.split(curl.replace("\\\n", " "))
    assert words[1] == "http://testserver/v1/chat/completions"
    assert json.loads(words[words.index("-d") + 1]) == inputs
    assert "Authorization: Bearer $YARDSTICK_API_KEY" in words
    assert "OpenAI-Project: team-alice/main" in words

    python = call_as_python({**inputs, "stream": True}, "team-alice/main", "http://testserver/v1")
    compile(python, "snippet.py", "exec")
    assert 'os.environ["YARDSTICK_API_KEY"]' in python and "for chunk in stream" in python
    assert "temperature=0.2" in python and "stream=True" in python
