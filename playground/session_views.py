"""The Playground's history: the history panel, a session's permalink, Continue, exports.

Access is the traces rule: a session is visible to whoever may read its project (404 for
anyone else, never 403); only its owner, in the project they are working in, writes to it.
Everyone else sees it read-only and may Continue in a copy of their own.
"""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from playground.selectors import current_project, readable_project_ids
from traces import sessions
from traces.models import Session


def page_url(*, kind: str, session_id: str) -> str:
    """The Playground or Compare page that continues the session."""
    name = "compare" if kind == Session.Kind.COMPARE else "playground"
    return f"{reverse(name)}?session={session_id}"


def session_readable(request, session_id: str) -> dict:
    """The restored session, or 404 when the user may not read its project."""
    restored = sessions.session_restore(
        project_ids=readable_project_ids(user=request.user), session_id=session_id
    )
    if restored is None:
        raise Http404("No such session.")
    return restored


def is_writable(restored: dict, *, user, project) -> bool:
    return (
        project is not None
        and restored["user_id"] == user.pk
        and restored["project_id"] == project.pk
    )


def page_restore_data(restored: dict) -> dict:
    """What the page's script needs to show a session again (passed through json_script)."""
    return {
        "session": restored["id"],
        "kind": restored["kind"],
        "title": restored["title"],
        "system_prompt": restored["system_prompt"],
        "params": restored["params"],
        "panes": restored["panes"],
        "bodies_missing": restored["bodies_missing"],
    }


@login_required
def history(request):
    """The user's recent sessions in the current project: a partial for the panel (htmx), or a
    page of its own."""
    project = current_project(user=request.user)
    rows = (
        sessions.sessions_recent(user_id=request.user.pk, project_id=project.pk) if project else []
    )
    for row in rows:
        row["url"] = page_url(kind=row["kind"], session_id=row["id"])
    template = "playground/history.html#items" if request.htmx else "playground/history.html"
    return render(request, template, {"sessions": rows, "project": project})


@login_required
def session_permalink(request, session_id: str):
    restored = session_readable(request, session_id)
    project = current_project(user=request.user)
    if is_writable(restored, user=request.user, project=project):
        return redirect(page_url(kind=restored["kind"], session_id=restored["id"]))
    return render(
        request,
        "playground/session.html",
        {
            "restored": restored,
            "restore_data": page_restore_data(restored),
            "is_owner": restored["user_id"] == request.user.pk,
            "project": project,
        },
    )


@login_required
@require_POST
def session_continue(request, session_id: str):
    """Continue someone else's session (or one from another project) in a copy of one's own,
    in the project one is working in."""
    restored = session_readable(request, session_id)
    project = current_project(user=request.user)
    if project is None:
        raise Http404("You have no project to continue in.")
    copy = sessions.session_copy(
        restored=restored,
        user_id=request.user.pk,
        organization_id=project.team.organization_id,
        project_id=project.pk,
        store_bodies=project.store_call_bodies,
    )
    return redirect(page_url(kind=copy.kind, session_id=copy.id))


@login_required
def session_export_json(request, session_id: str):
    restored = session_readable(request, session_id)
    response = HttpResponse(
        sessions.session_export_json(restored), content_type="application/json; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="session-{restored["id"]}.json"'
    return response


@login_required
def session_export_markdown(request, session_id: str):
    restored = session_readable(request, session_id)
    response = HttpResponse(
        sessions.session_export_markdown(restored), content_type="text/markdown; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="session-{restored["id"]}.md"'
    return response
