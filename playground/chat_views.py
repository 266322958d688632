"""The Playground (one model) and Compare (2-6 panes) pages; the chat itself runs over a websocket."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render

from billing.selectors import out_of_credits
from inference_app.gateway.callers import _load_caller_fields
from playground.catalog_views import api_base_url
from playground.chat_requests import MAX_PANES
from playground.selectors import current_project, readable_project_ids, served_models
from playground.session_views import is_writable, page_restore_data, page_url, session_readable
from traces import sessions
from traces.models import Session


def _models_json(models) -> list[dict]:
    return [
        {
            "id": m.model_id,
            "name": m.display_name,
            "context": m.context_window,
            "input_price_micros": m.input_price_micros,
            "output_price_micros": m.output_price_micros,
            "vision": m.supports_vision,
        }
        for m in models
    ]


def _page_context(request, project) -> dict:
    models = served_models()
    organization = project.team.organization if project else None
    return {
        "models": models,
        "models_json": _models_json(models),
        "base_url": api_base_url(request),
        "project_path": project.path if project else "",
        "restore": None,
        # Said before the first message is refused (billing/_out_of_credits.html).
        "organization": organization,
        "out_of_credits": organization is not None and out_of_credits(organization=organization),
    }


def _session_to_restore(request, project, kind: str):
    """(restore data, None) for `?session=` the user continues here, (None, a redirect) when
    the session is to be read elsewhere, (None, None) without one. 404 when unreadable."""
    session_id = request.GET.get("session")
    if not session_id:
        return None, None
    restored = session_readable(request, session_id)
    if not is_writable(restored, user=request.user, project=project):
        # Someone else's (or another project's): read-only, with Continue.
        return None, redirect("session_permalink", session_id=restored["id"])
    if restored["kind"] != kind:
        return None, redirect(page_url(kind=restored["kind"], session_id=restored["id"]))
    return page_restore_data(restored), None


def _call_to_restore(request):
    """`?from_call=<span id>` ("Open in Playground" on a call's page): that call's request."""
    span_id = request.GET.get("from_call")
    if not span_id:
        return None
    loaded = sessions.call_for_playground(
        project_ids=readable_project_ids(user=request.user), span_id=span_id
    )
    if loaded is None:
        raise Http404("No such call.")
    return {
        "session": None,
        "kind": Session.Kind.CHAT,
        "title": "",
        "system_prompt": loaded["system_prompt"],
        "params": loaded["params"],
        "panes": [
            {
                "pane": "chat",
                "model": loaded["model"],
                "params": loaded["params"],
                "messages": loaded["messages"],
            }
        ],
        "bodies_missing": loaded["bodies_missing"],
    }


@login_required
def playground(request):
    project = current_project(user=request.user)
    context = _page_context(request, project)
    restore, elsewhere = _session_to_restore(request, project, Session.Kind.CHAT)
    if elsewhere is not None:
        return elsewhere
    context["restore"] = restore or _call_to_restore(request)
    served_ids = [m.model_id for m in context["models"]]
    wanted = request.GET.get("model", "")
    if context["restore"] and context["restore"]["panes"]:
        wanted = context["restore"]["panes"][0]["model"] or wanted
    context["selected_model"] = wanted if wanted else (served_ids[0] if served_ids else "")
    context["unknown_model"] = bool(wanted) and wanted not in served_ids
    context["wanted_model"] = wanted
    return render(request, "playground/chat.html", context)


@login_required
def compare(request):
    project = current_project(user=request.user)
    context = _page_context(request, project)
    restore, elsewhere = _session_to_restore(request, project, Session.Kind.COMPARE)
    if elsewhere is not None:
        return elsewhere
    context["restore"] = restore
    wanted = [m.strip() for m in request.GET.get("models", "").split(",") if m.strip()]
    if restore and restore["panes"]:
        wanted = [pane["model"] for pane in restore["panes"]]
    wanted = wanted[:MAX_PANES]
    served_ids = [m.model_id for m in context["models"]]
    if len(wanted) < 2:
        # A comparison needs two panes: fill up with served models (or repeat the one given).
        pool = wanted + served_ids or [""]
        while len(wanted) < 2:
            wanted.append(pool[len(wanted) % len(pool)])
    context["pane_models"] = wanted
    context["max_panes"] = MAX_PANES
    # How many panes may run at once: the gateway's own limits for this user and project.
    limits = _load_caller_fields(request.user.pk, project.path if project else None)
    context["concurrency"] = (
        min(limits["user_concurrency"], limits["project_concurrency"]) if limits else None
    )
    return render(request, "playground/compare.html", context)
