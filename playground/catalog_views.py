"""The Inference page (model cards) and one model's page."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from playground.chat_requests import MAX_PANES
from playground.selectors import catalog_cards, catalog_model_find, current_project


def api_base_url(request) -> str:
    """Base URL for the openai client: SITE_URL when the operator set it, else this request's."""
    if settings.SITE_URL:
        return settings.SITE_URL.rstrip("/") + "/v1"
    return request.build_absolute_uri("/v1")


@login_required
def inference(request):
    return render(
        request,
        "inference/index.html",
        {
            "models": catalog_cards(),
            "compare_hint": "compare" in request.GET,
            "max_selected": MAX_PANES,  # Compare shows at most this many panes
        },
    )


@login_required
def model_detail(request, model_id: str):
    model = catalog_model_find(model_id=model_id)
    if model is None:
        raise Http404("No such model")
    project = current_project(user=request.user)
    return render(
        request,
        "inference/model_detail.html",
        {
            "model": model,
            "base_url": api_base_url(request),
            "project_path": project.path if project else "<your-team>/<your-project>",
        },
    )
