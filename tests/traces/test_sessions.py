"""traces/sessions.py: Playground and Compare sessions over calls written by the real write
service (traces.services.calls_record), as the gateway writes them."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from billing.models import Membership
from billing.organizations import membership_set, organization_create
from inference_app.accounts import default_project_set, project_create, team_add_member, team_create
from traces import sessions
from traces.models import Session
from traces.reports import CallReport
from traces.services import calls_record

pytestmark = pytest.mark.django_db

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
OTHER_MODEL = "microsoft/Phi-4-mini-instruct"


def make_user(username: str, *, team=None, role=Membership.Role.MEMBER):
    """A user in `team` (a new organization, team and project "main" without one)."""
    user = get_user_model().objects.create_user(username=username, password="pw-" + username)
    if team is None:
        org = organization_create(name=username, slug=f"org-{username}")
        team = team_create(organization=org, name=f"team-{username}")
        project_create(team=team, name="main")
    membership_set(organization=team.organization, user=user, role=role)
    team_add_member(team=team, user=user)
    project = team.projects.order_by("pk").first()
    default_project_set(user=user, project=project)
    return user, project


def record_session_call(
    session: Session,
    *,
    pane: str,
    messages: list[dict],
    answer: str | None,
    model: str = MODEL,
    ago: timedelta = timedelta(seconds=30),
    cost_micros: int = 1_000,
    params: dict | None = None,
    bodies: bool = True,
    span_id: str | None = None,
) -> CallReport:
    """One Playground call in `session`'s pane, written like the gateway writes it."""
    started_at = timezone.now() - ago
    request_id = f"chatcmpl-{secrets.token_hex(8)}"
    inputs = {"model": model, "messages": messages, **(params or {"max_tokens": 100})}
    report = CallReport(
        started_at=started_at,
        project_id=session.project_id,
        span_id=span_id or secrets.token_hex(8),
        trace_id=session.trace_id,
        organization_id=session.organization_id,
        team="t",
        project="p",
        request_id=request_id,
        user_id=session.user_id,
        source="compare" if session.kind == "compare" else "playground",
        model=model,
        session_id=session.id,
        pane=pane,
        ended_at=started_at + timedelta(milliseconds=500),
        duration_ms=500,
        inputs=inputs if bodies else None,
        output={"content": answer, "finish_reason": "stop"} if bodies else None,
    )
    calls_record(reports=[report], costs={request_id: cost_micros})
    return report


def new_session(project, user, *, kind="chat", title="Hello") -> Session:
    return sessions.session_create(
        organization_id=project.team.organization_id,
        project_id=project.pk,
        user_id=user.pk,
        kind=kind,
        title=title,
    )


def user_says(text):
    return {"role": "user", "content": text}


def model_says(text):
    return {"role": "assistant", "content": text}


@pytest.fixture
def alice():
    return make_user("alice")


def test_session_create_takes_its_title_from_the_first_user_message(alice):
    user, project = alice
    title = sessions.title_from_messages(
        [{"role": "system", "content": "Be brief."}, user_says("  What is\n\na  yardstick? " * 9)]
    )
    session = new_session(project, user, kind="compare", title=title)

    session.refresh_from_db()
    assert session.title.startswith("What is a yardstick? What is")
    assert len(session.title) == sessions.TITLE_CHARS and session.title.endswith("…")
    assert session.kind == "compare"
    assert len(session.id) == 32 and len(session.trace_id) == 32
    assert session.trace_id != session.id
    assert (session.project_id, session.user_id) == (project.pk, user.pk)
    assert sessions.title_from_messages([{"role": "user", "content": []}]) == "Image"


def test_layout_update_keeps_each_pane_and_follows_the_pages_panes(alice):
    user, project = alice
    session = new_session(project, user, kind="compare")
    sessions.session_layout_update(
        session=session, pane="p1", model=MODEL, params={"temperature": 0.2}, system_prompt="S"
    )
    sessions.session_layout_update(
        session=session,
        pane="p2",
        model=OTHER_MODEL,
        params={"max_tokens": 9, "stream": True, "stop": ["END"]},
        system_prompt="S2",
    )
    session.refresh_from_db()
    assert session.layout["system_prompt"] == "S2"
    assert session.layout["panes"] == [
        {"pane": "p1", "model": MODEL, "params": {"temperature": 0.2}},
        {"pane": "p2", "model": OTHER_MODEL, "params": {"max_tokens": 9, "stop": ["END"]}},
    ]
    # Pane p1 was removed from the page: a run that lists the page's panes drops it.
    sessions.session_layout_update(
        session=session,
        pane="p3",
        model=MODEL,
        params={},
        system_prompt="",
        pane_order=["p3", "p2"],
    )
    session.refresh_from_db()
    assert [p["pane"] for p in session.layout["panes"]] == ["p3", "p2"]


def test_restore_is_each_panes_last_call_and_its_answer(alice):
    user, project = alice
    session = new_session(project, user, kind="compare")
    for pane, model in (("p1", MODEL), ("p2", OTHER_MODEL)):
        sessions.session_layout_update(
            session=session,
            pane=pane,
            model=model,
            params={"temperature": 0.3},
            system_prompt="Be brief.",
        )
    system = {"role": "system", "content": "Be brief."}
    record_session_call(
        session,
        pane="p1",
        messages=[system, user_says("Hi")],
        answer="Hello!",
        ago=timedelta(seconds=60),
    )
    record_session_call(
        session,
        pane="p1",
        messages=[system, user_says("Hi"), model_says("Hello!"), user_says("And 2+2?")],
        answer="**4**",
        ago=timedelta(seconds=5),
    )
    record_session_call(
        session, pane="p2", messages=[system, user_says("Hi")], answer="Hey", model=OTHER_MODEL
    )

    restored = sessions.session_restore(project_ids=[project.pk], session_id=session.id)

    assert restored["kind"] == "compare" and restored["system_prompt"] == "Be brief."
    assert restored["bodies_missing"] is False
    p1, p2 = restored["panes"]
    assert (p1["pane"], p1["model"], p1["params"]) == ("p1", MODEL, {"temperature": 0.3})
    assert p1["messages"] == [
        user_says("Hi"),
        model_says("Hello!"),
        user_says("And 2+2?"),
        model_says("**4**"),
    ]
    assert (p2["model"], p2["messages"]) == (OTHER_MODEL, [user_says("Hi"), model_says("Hey")])


def test_restore_outside_the_readable_projects_is_nothing(alice):
    user, project = alice
    _bob, other_project = make_user("bob")
    session = new_session(project, user)
    assert sessions.session_restore(project_ids=[other_project.pk], session_id=session.id) is None
    assert sessions.session_restore(project_ids=[project.pk], session_id="nope") is None
    assert sessions.session_restore(project_ids=[project.pk], session_id=None) is None


def test_restore_with_bodies_off_brings_back_the_layout_only(alice):
    user, project = alice
    session = new_session(project, user)
    sessions.session_layout_update(
        session=session, pane="chat", model=MODEL, params={"temperature": 1.1}, system_prompt="S"
    )
    record_session_call(
        session, pane="chat", messages=[user_says("secret")], answer="x", bodies=False
    )

    restored = sessions.session_restore(project_ids=[project.pk], session_id=session.id)

    assert restored["bodies_missing"] is True
    assert restored["panes"] == [
        {"pane": "chat", "model": MODEL, "params": {"temperature": 1.1}, "messages": []}
    ]
    assert "secret" not in sessions.session_export_json(restored)


def test_a_copy_starts_with_the_originals_messages_then_follows_its_own_calls(alice):
    user, project = alice
    colleague, _ = make_user("carol", team=project.team)
    original = new_session(project, user, title="Tell me")
    sessions.session_layout_update(
        session=original, pane="chat", model=MODEL, params={"seed": 7}, system_prompt="S"
    )
    record_session_call(original, pane="chat", messages=[user_says("Tell me")], answer="Sure")
    restored = sessions.session_restore(project_ids=[project.pk], session_id=original.id)

    copy = sessions.session_copy(
        restored=restored,
        user_id=colleague.pk,
        organization_id=project.team.organization_id,
        project_id=project.pk,
    )

    assert copy.id != original.id and copy.trace_id != original.trace_id
    assert (copy.copied_from, copy.user_id, copy.title) == (original.id, colleague.pk, "Tell me")
    restored_copy = sessions.session_restore(project_ids=[project.pk], session_id=copy.id)
    assert restored_copy["system_prompt"] == "S"
    assert restored_copy["panes"][0]["params"] == {"seed": 7}
    assert restored_copy["panes"][0]["messages"] == [user_says("Tell me"), model_says("Sure")]
    # The copy's own run now decides what it shows; the original is unchanged.
    record_session_call(
        copy,
        pane="chat",
        messages=[user_says("Tell me"), model_says("Sure"), user_says("More")],
        answer="More!",
        ago=timedelta(seconds=1),
    )
    restored_copy = sessions.session_restore(project_ids=[project.pk], session_id=copy.id)
    assert restored_copy["panes"][0]["messages"][-1] == model_says("More!")
    again = sessions.session_restore(project_ids=[project.pk], session_id=original.id)
    assert again["panes"][0]["messages"] == [user_says("Tell me"), model_says("Sure")]


def test_a_copy_into_a_project_without_bodies_keeps_no_messages(alice):
    user, project = alice
    original = new_session(project, user)
    sessions.session_layout_update(
        session=original, pane="chat", model=MODEL, params={}, system_prompt=""
    )
    record_session_call(original, pane="chat", messages=[user_says("Hi")], answer="Hey")
    restored = sessions.session_restore(project_ids=[project.pk], session_id=original.id)
    copy = sessions.session_copy(
        restored=restored,
        user_id=user.pk,
        organization_id=project.team.organization_id,
        project_id=project.pk,
        store_bodies=False,
    )
    assert "messages" not in json.dumps(copy.layout)


def test_run_access_is_the_owner_in_the_sessions_project_only(alice):
    user, project = alice
    colleague, _ = make_user("carol", team=project.team)
    lab = project_create(team=project.team, name="lab")
    session = new_session(project, user)
    assert sessions.session_for_run(session_id=session.id, user_id=user.pk, project_id=project.pk)
    assert not sessions.session_for_run(
        session_id=session.id, user_id=colleague.pk, project_id=project.pk
    )
    assert not sessions.session_for_run(session_id=session.id, user_id=user.pk, project_id=lab.pk)
    assert not sessions.session_for_run(session_id=None, user_id=user.pk, project_id=project.pk)


def test_recent_sessions_are_the_users_own_in_the_project_newest_first_with_their_cost(alice):
    user, project = alice
    colleague, _ = make_user("carol", team=project.team)
    lab = project_create(team=project.team, name="lab")
    older = new_session(project, user, title="Older")
    newer = new_session(project, user, kind="compare", title="Newer")
    for pane, model in (("p1", MODEL), ("p2", OTHER_MODEL)):
        sessions.session_layout_update(
            session=newer, pane=pane, model=model, params={}, system_prompt=""
        )
    record_session_call(newer, pane="p1", messages=[user_says("a")], answer="b", cost_micros=1500)
    record_session_call(
        newer, pane="p2", messages=[user_says("a")], answer="c", cost_micros=2500, model=OTHER_MODEL
    )
    new_session(project, colleague, title="Not mine")
    sessions.session_create(
        organization_id=project.team.organization_id,
        project_id=lab.pk,
        user_id=user.pk,
        kind="chat",
        title="Other project",
    )

    rows = sessions.sessions_recent(user_id=user.pk, project_id=project.pk)

    assert [r["title"] for r in rows] == ["Newer", "Older"]
    assert rows[0]["kind"] == "compare"
    assert rows[0]["models"] == [MODEL, OTHER_MODEL]
    assert rows[0]["cost_micros"] == 4000
    assert rows[1]["id"] == older.id and rows[1]["cost_micros"] is None


def test_exports_hold_the_conversation(alice):
    user, project = alice
    session = new_session(project, user, kind="compare", title="Two models")
    for pane, model in (("p1", MODEL), ("p2", OTHER_MODEL)):
        sessions.session_layout_update(
            session=session,
            pane=pane,
            model=model,
            params={"temperature": 0.5},
            system_prompt="Be brief.",
        )
        record_session_call(
            session, pane=pane, messages=[user_says("Hi")], answer=f"Hi from {pane}", model=model
        )
    restored = sessions.session_restore(project_ids=[project.pk], session_id=session.id)

    data = json.loads(sessions.session_export_json(restored))
    markdown = sessions.session_export_markdown(restored)

    assert data["id"] == session.id and data["kind"] == "compare"
    assert data["system_prompt"] == "Be brief."
    assert [p["messages"][-1]["content"] for p in data["panes"]] == ["Hi from p1", "Hi from p2"]
    assert markdown.startswith("# Two models\n")
    assert f"## Pane 1: {MODEL}" in markdown and f"## Pane 2: {OTHER_MODEL}" in markdown
    assert "> Be brief." in markdown
    assert "### User\n\nHi\n" in markdown and "### Assistant\n\nHi from p2\n" in markdown


def test_call_for_playground_loads_a_readable_calls_request(alice):
    user, project = alice
    _bob, other_project = make_user("bob")
    session = new_session(project, user)
    report = record_session_call(
        session,
        pane="chat",
        messages=[{"role": "system", "content": "Terse."}, user_says("Hi")],
        answer="Yo",
        params={"temperature": 0.1, "max_tokens": 64, "stop": ["\n\n"], "stream": True},
    )

    loaded = sessions.call_for_playground(project_ids=[project.pk], span_id=report.span_id)

    assert loaded["model"] == MODEL and loaded["system_prompt"] == "Terse."
    assert loaded["params"] == {"temperature": 0.1, "max_tokens": 64, "stop": ["\n\n"]}
    assert loaded["messages"] == [user_says("Hi"), model_says("Yo")]
    assert (
        sessions.call_for_playground(project_ids=[other_project.pk], span_id=report.span_id) is None
    )
    assert sessions.call_for_playground(project_ids=[project.pk], span_id="0" * 16) is None
