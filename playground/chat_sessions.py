"""Which trace session a Playground or Compare run writes to (traces/sessions.py keeps them).

A run names the session the page shows; it is used only when it is the user's own, in the
project the run goes to. Any other id (someone else's session, another project's, a made-up
one) is ignored and the run starts a new session: a run never writes into a session that is
not the caller's.
"""

from __future__ import annotations

from django.db import transaction

from inference_app.models import Project
from traces import sessions
from traces.models import Session


def run_session(
    *,
    user_id: int,
    project: Project,
    session_id,
    fallback_id: str | None,
    kind: str,
    pane: str,
    body: dict,
    pane_order=None,
) -> tuple[Session, bool]:
    """The session for this run (and whether it was just created), its layout brought up to
    date with the run's pane, model, parameters and system prompt.

    `fallback_id` is the session this page's socket created for runs that named none yet (the
    panes of a first Compare message all start before the page hears of the new session).
    """
    with transaction.atomic():
        session = None
        for candidate in (session_id, fallback_id):
            session = sessions.session_for_run(
                session_id=candidate, user_id=user_id, project_id=project.pk
            )
            if session is not None:
                break
        created = session is None
        if created:
            session = sessions.session_create(
                organization_id=project.team.organization_id,
                project_id=project.pk,
                user_id=user_id,
                kind=Session.Kind.COMPARE if kind == "compare" else Session.Kind.CHAT,
                title=sessions.title_from_messages(body.get("messages")),
            )
        sessions.session_layout_update(
            session=session,
            pane=pane,
            model=body.get("model") or "",
            params=body,
            system_prompt=_system_prompt(body.get("messages")),
            pane_order=pane_order if isinstance(pane_order, list) else None,
        )
    return session, created


def _system_prompt(messages) -> str:
    for message in messages or []:
        if message.get("role") == "system" and isinstance(message.get("content"), str):
            return message["content"]
    return ""
