"""The Playground (one model) and Compare (2-6 panes) pages; the chat itself runs over a websocket."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from playground.catalog_views import api_base_url
from playground.chat_requests import MAX_PANES
from playground.selectors import current_project, served_models


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


def _page_context(request) -> dict:
    models = served_models()
    project = current_project(user=request.user)
    return {
        "models": models,
        "models_json": _models_json(models),
        "base_url": api_base_url(request),
        "project_path": project.path if project else "",
    }


@login_required
def playground(request):
    context = _page_context(request)
    served_ids = [m.model_id for m in context["models"]]
    wanted = request.GET.get("model", "")
    context["selected_model"] = wanted if wanted else (served_ids[0] if served_ids else "")
    context["unknown_model"] = bool(wanted) and wanted not in served_ids
    return render(request, "playground/chat.html", context)


@login_required
def compare(request):
    context = _page_context(request)
    wanted = [m.strip() for m in request.GET.get("models", "").split(",") if m.strip()]
    wanted = wanted[:MAX_PANES]
    served_ids = [m.model_id for m in context["models"]]
    if len(wanted) < 2:
        # A comparison needs two panes: fill up with served models (or repeat the one given).
        pool = wanted + served_ids or [""]
        while len(wanted) < 2:
            wanted.append(pool[len(wanted) % len(pool)])
    context["pane_models"] = wanted
    context["max_panes"] = MAX_PANES
    return render(request, "playground/compare.html", context)
