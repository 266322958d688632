"""The Traces pages: a project's calls, and one call with its trace.

Thin views over traces.selectors. Access is one rule (inference_app.projects.projects_readable):
the projects a user may use, and all projects of the organizations they administer. A call
outside them is a 404, never a 403: the page does not tell whether it exists.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from evaluations.arena_selectors import open_battle_sessions
from inference_app.models import CatalogModel, Project, TeamMembership
from inference_app.projects import project_for_user, projects_readable
from playground.catalog_views import api_base_url
from playground.selectors import served_models
from traces.forms import CallFilterForm, default_filters
from traces.selectors import call_detail, calls_page, trace_spans
from traces.snippets import call_as_curl, call_as_python

# Request fields shown as the call's parameters (the messages and tools have their own place).
_NOT_PARAMETERS = {"messages", "model", "tools", "stream_options"}


def _project_path(project: Project) -> str:
    return f"{project.team.name}/{project.name}"


def _list_project(request, readable: list[Project]) -> Project | None:
    """`?project=team/name` when the user may read it (else 404); otherwise the user's current
    project (the header's), else the first one they may read."""
    path = request.GET.get("project", "")
    if path:
        for project in readable:
            if _project_path(project) == path:
                return project
        raise Http404("No such project")
    current = project_for_user(user_id=request.user.pk, path=None)
    if current is not None and any(p.pk == current.pk for p in readable):
        return current
    return readable[0] if readable else None


def _usernames(user_ids) -> dict[int, str]:
    ids = {user_id for user_id in user_ids if user_id is not None}
    if not ids:
        return {}
    return dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))


def _team_users(project: Project) -> list[tuple[int, str]]:
    """The people the user filter offers: the project's team."""
    return list(
        TeamMembership.objects.filter(team_id=project.team_id)
        .order_by("user__username")
        .values_list("user_id", "user__username")
    )


@require_GET
@login_required
# The same URL answers rows (htmx) or the page: without Vary, Back after leaving the list shows
# the browser's cached rows alone, without the page around them.
@vary_on_headers("HX-Request")
def traces_list(request):
    readable = list(projects_readable(user_id=request.user.pk))
    project = _list_project(request, readable)
    form = CallFilterForm(request.GET)
    if form.is_valid():
        filters, cursor = form.filters(), form.cleaned_data["before"]
    else:
        filters, cursor = default_filters(), None
    page = None
    if project is not None:
        hidden = open_battle_sessions(project_id=project.pk)
        if hidden:
            filters = dataclasses.replace(filters, hidden_sessions=hidden)
        page = calls_page(project_id=project.pk, filters=filters, cursor=cursor)
    usernames = _usernames(call.user_id for call in page.calls) if page else {}
    rows = [
        {"call": call, "username": usernames.get(call.user_id, "")}
        for call in (page.calls if page else [])
    ]
    older_url = newest_url = ""
    if page is not None and page.next_cursor is not None:
        query = request.GET.copy()
        query["before"] = str(page.next_cursor)
        older_url = f"{reverse('traces:list')}?{query.urlencode()}"
    if cursor is not None:
        query = request.GET.copy()
        query.pop("before", None)
        newest_url = reverse("traces:list") + (f"?{query.urlencode()}" if query else "")
    context = {
        "project": project,
        "project_path": _project_path(project) if project else "",
        "readable": readable,
        "form": form,
        "filters": filters,
        "rows": rows,
        "older_url": older_url,
        "newest_url": newest_url,
        "is_filtered": _is_filtered(request.GET),
        "team_users": _team_users(project) if project else [],
        "model_ids": list(
            CatalogModel.objects.order_by("model_id").values_list("model_id", flat=True)
        ),
        "base_url": api_base_url(request),
        "example_model": _example_model() if not rows else "",
    }
    # A history restore (Back after htmx pushed the URL) wants the whole page.
    partial = request.htmx and not request.htmx.history_restore_request
    return render(request, "traces/list.html#rows" if partial else "traces/list.html", context)


def _example_model() -> str:
    """A model the first-call example can really run: the first one an engine serves."""
    served = served_models()
    return served[0].model_id if served else "meta-llama/Llama-3.1-8B-Instruct"


def _is_filtered(params) -> bool:
    return any(
        params.get(name)
        for name in (
            "since",
            "until",
            "model",
            "source",
            "status",
            "user",
            "min_latency_ms",
            "min_cost",
            "q",
            "before",
        )
    ) or params.get("range", "") not in ("", "7d")


def waterfall(spans, *, selected: str) -> list[dict]:
    """The trace's spans in tree order with their depth and their bar's place (left and width
    in % of the trace's time). A span whose parent is not among `spans` is a root."""
    if not spans:
        return []
    by_id = {span.span_id: span for span in spans}
    children: dict[str, list] = {}
    roots = []
    for span in spans:
        parent = span.parent_span_id
        if parent and parent in by_id and parent != span.span_id:
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)
    start = min(span.started_at for span in spans)
    end = max(_ended(span) for span in spans)
    total_ms = max((end - start).total_seconds() * 1000, 1.0)
    rows, seen = [], set()

    def visit(span, depth):
        if span.span_id in seen:  # a parent loop in client-sent spans
            return
        seen.add(span.span_id)
        left = (span.started_at - start).total_seconds() * 1000 / total_ms * 100
        width = max((_ended(span) - span.started_at).total_seconds() * 1000 / total_ms * 100, 0.5)
        left = min(max(left, 0.0), 99.5)
        rows.append(
            {
                "span": span,
                "depth": depth,
                "indent": min(depth, 8) * 14,
                "left": f"{left:.2f}",
                "width": f"{min(width, 100 - left):.2f}",
                "selected": span.span_id == selected,
            }
        )
        for child in sorted(children.get(span.span_id, []), key=lambda s: s.started_at):
            visit(child, depth + 1)

    for root in sorted(roots, key=lambda s: s.started_at):
        visit(root, 0)
    return rows


def _ended(span):
    if span.ended_at is not None and span.ended_at >= span.started_at:
        return span.ended_at
    return span.started_at + timedelta(milliseconds=span.duration_ms or 0)


def _parameters(inputs: dict) -> list[tuple[str, str]]:
    shown = []
    for key, value in inputs.items():
        if key in _NOT_PARAMETERS:
            continue
        shown.append((key, value if isinstance(value, str) else json.dumps(value)))
    return shown


def _conversation(inputs: dict, output: dict) -> dict | None:
    """What the page's script draws as chat messages, or None when the body is no chat."""
    messages = inputs.get("messages")
    if not isinstance(messages, list):
        return None
    answer = None
    if output.get("content") or output.get("tool_calls"):
        answer = {"content": output.get("content") or "", "tool_calls": output.get("tool_calls")}
    return {"messages": messages, "answer": answer}


@require_GET
@login_required
def traces_detail(request, span_id: str):
    readable = list(projects_readable(user_id=request.user.pk))
    call = call_detail(project_ids=[p.pk for p in readable], span_id=span_id)
    if call is None or call.session_id in open_battle_sessions(project_id=call.project_id):
        raise Http404("No such call")
    project = next(p for p in readable if p.pk == call.project_id)
    spans = trace_spans(project_id=call.project_id, trace_id=call.trace_id) if call.trace_id else []
    if not any(span.span_id == call.span_id for span in spans):
        spans.append(call)
    body = call.body
    inputs = body.inputs if body is not None and isinstance(body.inputs, dict) else {}
    output = body.output if body is not None and isinstance(body.output, dict) else {}
    conversation = _conversation(inputs, output) if body is not None else None
    project_path = _project_path(project)
    base_url = api_base_url(request)
    usernames = _usernames([call.user_id])
    context = {
        "call": call,
        "project": project,
        "project_path": project_path,
        "spans": waterfall(spans, selected=call.span_id),
        "span_count": len(spans),
        "body": body,
        "inputs_json": json.dumps(inputs, indent=2, ensure_ascii=False) if inputs else "",
        "output_json": json.dumps(output, indent=2, ensure_ascii=False) if output else "",
        "conversation": conversation,
        "parameters": _parameters(inputs),
        "tools_json": json.dumps(inputs["tools"], indent=2, ensure_ascii=False)
        if inputs.get("tools")
        else "",
        "username": usernames.get(call.user_id, ""),
        "total_tokens": call.prompt_tokens + call.completion_tokens,
        "attributes_json": json.dumps(call.attributes, indent=2, ensure_ascii=False)
        if call.attributes
        else "",
        "can_replay": conversation is not None,
        "curl": call_as_curl(inputs, project_path, base_url) if conversation else "",
        "python": call_as_python(inputs, project_path, base_url) if conversation else "",
    }
    return render(request, "traces/detail.html", context)


@require_GET
def call_link(request, team: str, project: str, span_id: str):
    """The seed's link shape, /<team>/<project>/r/call/<id>: the call's page decides access."""
    return redirect("traces:detail", span_id=span_id, permanent=False)
