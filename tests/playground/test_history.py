"""The Playground's history: runs from the pages join a trace session over the real socket and
gateway (fake engine only); restore, permalinks, Continue, exports, the history panel and
"Open in Playground" through the real views."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from billing.models import Membership, UsageRecord
from inference_app.accounts import default_project_set, project_create, team_create
from inference_app.catalog import sync_catalog
from inference_app.gateway import settlement
from inference_app.models import CatalogModel, Deployment
from playground.templatetags.yardstick import ago
from tests.playground.socket_client import FAST, connect, next_event
from tests.traces.test_sessions import (
    MODEL,
    OTHER_MODEL,
    make_user,
    model_says,
    new_session,
    record_session_call,
    user_says,
)
from traces import sessions
from traces.models import Call, Session

FAST_2 = "microsoft/Phi-4-mini-instruct"


# ---- the socket ----------------------------------------------------------------------------


@pytest.fixture
async def settled():
    """Usage rows (and their calls) are written in the background: finish them in the test."""
    yield
    await settlement.drain()


@pytest.fixture
def served(fake_engine, settled):
    sync_catalog()  # a transactional test's flush also empties the seeded catalog
    for name, model_id in (("fake-fast", FAST), ("fake-fast-2", FAST_2)):
        Deployment.objects.create(
            name=name,
            model=CatalogModel.objects.get(model_id=model_id),
            base_url=fake_engine.base_url,
            upstream_model="fast-model",
        )


def run(pane: str, *, model=FAST, text="Hello there, model", kind="chat", **fields) -> dict:
    return {
        "type": "run",
        "pane": pane,
        "run": f"r-{pane}",
        "model": model,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        "params": {"max_tokens": 20, "temperature": 0.4},
        "kind": kind,
        **fields,
    }


async def until_done(ws, panes: set[str]) -> list[dict]:
    events, ended = [], set()
    async with asyncio.timeout(20):
        while not panes <= ended:
            event = await next_event(ws)
            events.append(event)
            if event["type"] in ("done", "error"):
                ended.add(event["pane"])
    return events


async def calls_of(session_id: str) -> list[dict]:
    await settlement.drain()
    return await sync_to_async(list)(
        Call.objects.filter(session_id=session_id).values("pane", "source", "trace_id", "user_id")
    )


@pytest.mark.django_db(transaction=True)
async def test_a_chats_first_run_creates_a_session_and_tells_the_page(served):
    user, project = await sync_to_async(make_user)("alice", role=Membership.Role.ADMIN)
    ws = await connect(user)
    await ws.send_json_to(run("chat"))
    events = await until_done(ws, {"chat"})
    await ws.disconnect()

    assert events[0]["type"] == "session", events[0]  # before the answer starts
    assert [e for e in events if e["type"] == "error"] == []
    session = await Session.objects.aget(id=events[0]["id"])
    assert (session.kind, session.user_id, session.project_id) == ("chat", user.pk, project.pk)
    assert session.title == "Hello there, model"
    assert session.layout["system_prompt"] == "Be brief."
    assert session.layout["panes"] == [
        {"pane": "chat", "model": FAST, "params": {"temperature": 0.4, "max_tokens": 20}}
    ]
    calls = await calls_of(session.id)
    assert calls == [
        {"pane": "chat", "source": "playground", "trace_id": session.trace_id, "user_id": user.pk}
    ]


@pytest.mark.django_db(transaction=True)
async def test_later_runs_naming_the_session_write_to_it(served):
    user, _ = await sync_to_async(make_user)("alice")
    ws = await connect(user)
    await ws.send_json_to(run("chat"))
    first = await until_done(ws, {"chat"})
    session_id = first[0]["id"]
    await ws.send_json_to(run("chat", text="Again", session=session_id, draft="d9"))
    second = await until_done(ws, {"chat"})
    await ws.disconnect()

    assert [e["type"] for e in second if e["type"] == "session"] == []
    assert await Session.objects.acount() == 1
    assert [c["pane"] for c in await calls_of(session_id)] == ["chat", "chat"]


@pytest.mark.django_db(transaction=True)
async def test_a_compare_message_makes_one_compare_session_for_every_pane(served):
    user, _ = await sync_to_async(make_user)("alice")
    ws = await connect(user)
    panes = ["p1", "p2"]
    await ws.send_json_to(run("p1", kind="compare", draft="d1", panes=panes))
    await ws.send_json_to(run("p2", model=FAST_2, kind="compare", draft="d1", panes=panes))
    events = await until_done(ws, {"p1", "p2"})
    await ws.disconnect()

    announced = [e for e in events if e["type"] == "session"]
    assert len(announced) == 1 and announced[0]["kind"] == "compare"
    session = await Session.objects.aget()
    assert [(p["pane"], p["model"]) for p in session.layout["panes"]] == [
        ("p1", FAST),
        ("p2", FAST_2),
    ]
    calls = await calls_of(session.id)
    assert sorted((c["pane"], c["source"]) for c in calls) == [
        ("p1", "compare"),
        ("p2", "compare"),
    ]
    # The usage rows say "compare" too: the caller's source.
    await settlement.drain()
    sources = await sync_to_async(list)(UsageRecord.objects.values_list("source", flat=True))
    assert sources == ["compare", "compare"]


@pytest.mark.django_db(transaction=True)
async def test_a_run_naming_someone_elses_session_starts_a_new_one(served):
    alice, project = await sync_to_async(make_user)("alice")
    colleague, _ = await sync_to_async(make_user)("carol", team=project.team)
    hers = await sync_to_async(new_session)(project, alice, title="Alice's")
    ws = await connect(colleague)
    await ws.send_json_to(run("chat", session=hers.id))
    events = await until_done(ws, {"chat"})
    await ws.disconnect()

    assert events[0]["type"] == "session" and events[0]["id"] != hers.id
    await hers.arefresh_from_db()
    assert hers.layout["panes"] == [] and hers.title == "Alice's"
    assert await calls_of(hers.id) == []
    mine = await Session.objects.aget(id=events[0]["id"])
    assert mine.user_id == colleague.pk


@pytest.mark.django_db(transaction=True)
async def test_a_run_naming_a_session_of_another_project_starts_a_new_one(served):
    user, project = await sync_to_async(make_user)("alice")
    lab = await sync_to_async(project_create)(team=project.team, name="lab")
    elsewhere = await sync_to_async(new_session)(lab, user)
    ws = await connect(user)
    await ws.send_json_to(run("chat", session=elsewhere.id))
    events = await until_done(ws, {"chat"})
    await ws.disconnect()

    assert events[0]["type"] == "session" and events[0]["id"] != elsewhere.id
    assert await calls_of(elsewhere.id) == []


@pytest.mark.django_db(transaction=True)
async def test_a_run_without_a_kind_has_no_session(served):
    user, _ = await sync_to_async(make_user)("alice")
    ws = await connect(user)
    message = run("chat")
    del message["kind"]
    await ws.send_json_to(message)
    events = await until_done(ws, {"chat"})
    await ws.disconnect()

    assert "session" not in [e["type"] for e in events]
    assert await Session.objects.acount() == 0


# ---- the pages -----------------------------------------------------------------------------


@pytest.fixture
def team_world(db):
    """alice and carol in one team and project; bob in another organization."""
    alice, project = make_user("alice", role=Membership.Role.ADMIN)
    carol, _ = make_user("carol", team=project.team)
    bob, _ = make_user("bob")
    return alice, carol, bob, project


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def restore_data(response) -> dict | None:
    match = re.search(
        r'<script id="restore-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    return json.loads(match.group(1)) if match else None


def chat_session(project, user):
    session = new_session(project, user, title="Hi")
    sessions.session_layout_update(
        session=session, pane="chat", model=MODEL, params={"temperature": 0.2}, system_prompt="S"
    )
    record_session_call(
        session,
        pane="chat",
        messages=[{"role": "system", "content": "S"}, user_says("Hi <b>there</b>")],
        answer="<img src=x onerror=alert(1)> **hello**",
    )
    return session


def test_the_owner_reopens_a_chat_with_its_messages_and_settings(team_world):
    alice, _carol, _bob, project = team_world
    session = chat_session(project, alice)

    response = client_for(alice).get(f"/playground/?session={session.id}")

    assert response.status_code == 200
    data = restore_data(response)
    assert data["session"] == session.id and data["system_prompt"] == "S"
    assert data["panes"][0]["params"] == {"temperature": 0.2}
    assert data["panes"][0]["messages"] == [
        user_says("Hi <b>there</b>"),
        model_says("<img src=x onerror=alert(1)> **hello**"),
    ]
    html = response.content.decode()
    # Passed as JSON (escaped), never as markup.
    assert "<img src=x" not in html and "<b>there</b>" not in html
    assert f'data-model="{MODEL}"' in html


def test_a_compare_session_reopens_every_pane(team_world):
    alice, _carol, _bob, project = team_world
    session = new_session(project, alice, kind="compare")
    for pane, model in (("p1", MODEL), ("p2", OTHER_MODEL), ("p3", MODEL)):
        sessions.session_layout_update(
            session=session, pane=pane, model=model, params={"seed": 3}, system_prompt="S"
        )
        record_session_call(session, pane=pane, messages=[user_says("Q")], answer=f"A {pane}")
    client = client_for(alice)

    # Opened as a chat, it goes to Compare.
    redirected = client.get(f"/playground/?session={session.id}")
    assert redirected.status_code == 302
    assert redirected["Location"] == f"/playground/compare?session={session.id}"
    response = client.get(redirected["Location"])

    assert response.status_code == 200
    data = restore_data(response)
    assert [(p["pane"], p["model"]) for p in data["panes"]] == [
        ("p1", MODEL),
        ("p2", OTHER_MODEL),
        ("p3", MODEL),
    ]
    assert [p["messages"][-1]["content"] for p in data["panes"]] == ["A p1", "A p2", "A p3"]
    pane_models = re.search(
        r'<script id="pane-models" type="application/json">(.*?)</script>',
        response.content.decode(),
    )
    assert json.loads(pane_models.group(1)) == [MODEL, OTHER_MODEL, MODEL]


def test_bodies_off_restores_the_layout_and_says_so(team_world):
    alice, _carol, _bob, project = team_world
    session = new_session(project, alice)
    sessions.session_layout_update(
        session=session, pane="chat", model=MODEL, params={}, system_prompt=""
    )
    record_session_call(session, pane="chat", messages=[user_says("x")], answer="y", bodies=False)

    response = client_for(alice).get(f"/playground/?session={session.id}")

    assert restore_data(response)["panes"][0]["messages"] == []
    assert 'id="bodies-missing"' in response.content.decode()


def test_permalink_owner_continues_member_reads_outsider_gets_404(team_world):
    alice, carol, bob, project = team_world
    session = chat_session(project, alice)
    url = f"/playground/s/{session.id}"

    owner = client_for(alice).get(url)
    assert owner.status_code == 302 and owner["Location"] == f"/playground/?session={session.id}"

    member = client_for(carol).get(url)
    assert member.status_code == 200
    html = member.content.decode()
    assert "Read-only" in html and 'id="continue"' in html
    assert restore_data(member)["panes"][0]["messages"][0] == user_says("Hi <b>there</b>")
    assert "<b>there</b>" not in html
    # The member opening it as a page of their own is sent to the read-only view.
    page = client_for(carol).get(f"/playground/?session={session.id}")
    assert page.status_code == 302 and page["Location"] == url

    outsider = client_for(bob)
    for path in (url, f"{url}.json", f"{url}.md", f"/playground/?session={session.id}"):
        assert outsider.get(path).status_code == 404, path
    assert outsider.post(f"{url}/continue").status_code == 404
    assert Session.objects.count() == 1


def test_continue_copies_the_session_for_the_member(team_world):
    alice, carol, _bob, project = team_world
    session = chat_session(project, alice)
    client = client_for(carol)

    response = client.post(f"/playground/s/{session.id}/continue")

    copy = Session.objects.exclude(id=session.id).get()
    assert response.status_code == 302
    assert response["Location"] == f"/playground/?session={copy.id}"
    assert (copy.user_id, copy.project_id, copy.copied_from) == (carol.pk, project.pk, session.id)
    data = restore_data(client.get(response["Location"]))
    assert data["session"] == copy.id and data["system_prompt"] == "S"
    assert data["panes"][0]["messages"][-1] == model_says("<img src=x onerror=alert(1)> **hello**")
    assert client.get(f"/playground/s/{session.id}/continue").status_code == 405


def test_exports_for_owner_and_member(team_world):
    alice, carol, _bob, project = team_world
    session = chat_session(project, alice)
    for user in (alice, carol):
        client = client_for(user)
        as_json = client.get(f"/playground/s/{session.id}.json")
        as_md = client.get(f"/playground/s/{session.id}.md")
        assert as_json.status_code == 200 and as_md.status_code == 200
        assert as_json["Content-Type"].startswith("application/json")
        assert as_md["Content-Type"].startswith("text/markdown")
        data = json.loads(as_json.content)
        assert data["id"] == session.id
        assert data["panes"][0]["messages"][0] == user_says("Hi <b>there</b>")
        assert "### Assistant\n\n<img src=x onerror=alert(1)> **hello**" in as_md.content.decode()


def test_an_organization_admin_outside_the_team_reads_but_does_not_write(team_world, db):
    alice, carol, _bob, project = team_world
    session = chat_session(project, carol)
    # alice administers the organization; move carol's session to a team alice is not in.
    other_team = team_create(organization=project.team.organization, name="other-team")
    hidden = project_create(team=other_team, name="hidden")
    Session.objects.filter(id=session.id).update(project_id=hidden.pk)

    response = client_for(alice).get(f"/playground/s/{session.id}")
    assert response.status_code == 200 and "Read-only" in response.content.decode()


def test_history_panel_lists_the_users_sessions_in_the_current_project(team_world):
    alice, carol, _bob, project = team_world
    chat = chat_session(project, alice)
    compare = new_session(project, alice, kind="compare", title="Side by side")
    for pane, model in (("p1", MODEL), ("p2", OTHER_MODEL)):
        sessions.session_layout_update(
            session=compare, pane=pane, model=model, params={}, system_prompt=""
        )
        record_session_call(compare, pane=pane, messages=[user_says("Q")], answer="A")
    new_session(project, carol, title="Carol's own")

    partial = client_for(alice).get("/playground/history", HTTP_HX_REQUEST="true")

    html = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in html
    assert html.index("Side by side") < html.index(">Hi<")  # newest first
    assert "Carol's own" not in html
    assert f'href="/playground/compare?session={compare.id}"' in html
    assert f'href="/playground/?session={chat.id}"' in html
    assert OTHER_MODEL in html
    assert "$0.002" in html  # two calls of 1,000 micros
    full = client_for(alice).get("/playground/history")
    assert "<html" in full.content.decode() and "Side by side" in full.content.decode()


def test_pages_carry_the_history_menu_and_new_chat(team_world):
    alice, *_ = team_world
    client = client_for(alice)
    for path in ("/playground/", "/playground/compare"):
        html = client.get(path).content.decode()
        assert 'hx-get="/playground/history"' in html and "data-new-session" in html
        assert restore_data(client.get(path)) is None


def test_open_in_playground_loads_a_readable_call(team_world):
    alice, carol, bob, project = team_world
    session = chat_session(project, alice)
    span_id = Call.objects.get(session_id=session.id).span_id

    response = client_for(carol).get(f"/playground/?from_call={span_id}")

    assert response.status_code == 200
    data = restore_data(response)
    assert data["session"] is None and data["system_prompt"] == "S"
    assert data["panes"][0]["model"] == MODEL
    assert data["panes"][0]["messages"][0] == user_says("Hi <b>there</b>")
    assert data["panes"][0]["params"] == {"max_tokens": 100}
    assert client_for(bob).get(f"/playground/?from_call={span_id}").status_code == 404
    assert client_for(carol).get("/playground/?from_call=ffffffffffffffff").status_code == 404


def test_ones_own_session_from_another_project_opens_read_only_with_continue(team_world):
    alice, _carol, _bob, project = team_world
    session = chat_session(project, alice)
    lab = project_create(team=project.team, name="lab")
    default_project_set(user=alice, project=lab)  # alice switched to "lab"
    client = client_for(alice)

    page = client.get(f"/playground/?session={session.id}")
    assert page.status_code == 302 and page["Location"] == f"/playground/s/{session.id}"
    html = client.get(page["Location"]).content.decode()
    assert "Your session, in another project" in html and 'id="continue"' in html
    copy = client.post(f"/playground/s/{session.id}/continue")
    assert Session.objects.get(copied_from=session.id).project_id == lab.pk
    assert copy.status_code == 302


def test_ago_says_just_now_then_the_largest_unit():
    now = timezone.now()
    assert ago(now - timedelta(seconds=20)) == "just now"
    assert ago(now - timedelta(hours=3, minutes=5)) == "3\xa0hours ago"
