"""Sign-up, the API keys page and the project switcher (Django's own views do sign in/out)."""

from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRefresh

from inference_app.accounts import api_key_create, api_key_revoke, default_project_set
from inference_app.models import ApiKey
from playground.forms import ApiKeyCreateForm, ProjectSwitchForm, SignupForm
from playground.selectors import user_api_keys, user_projects
from playground.services import user_signup


def signup(request):
    if request.user.is_authenticated:
        return redirect("inference")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = user_signup(
            username=form.cleaned_data["username"],
            email=form.cleaned_data.get("email", ""),
            password=form.cleaned_data["password1"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("inference")
    return render(request, "registration/signup.html", {"form": form})


# The largest primary key the database can hold (a 64-bit signed integer).
_MAX_KEY_ID = 2**63 - 1


def _key_id(raw: str | None) -> int | None:
    """The key id a revoke form sent, or None when it is not one.

    ASCII digits only: int() also takes "+1", " 1", "1_0" and other scripts' digits (and
    raises past 4,300 digits), and the database refuses numbers past 64 bits with an error
    rather than "no such row".
    """
    if not raw or len(raw) > len(str(_MAX_KEY_ID)) or not raw.isascii() or not raw.isdigit():
        return None
    key_id = int(raw)
    return key_id if 0 < key_id <= _MAX_KEY_ID else None


@never_cache  # the response may carry a raw key: no browser or proxy may keep it
@login_required
def api_keys(request):
    """List, create (raw key shown once, in this response only) and revoke the user's own keys."""
    created_key = None
    form = ApiKeyCreateForm()
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "create":
            form = ApiKeyCreateForm(request.POST)
            if form.is_valid():
                _, created_key = api_key_create(user=request.user, name=form.cleaned_data["name"])
                form = ApiKeyCreateForm()
        elif action == "revoke":
            key_id = _key_id(request.POST.get("key_id"))
            if key_id is None:
                return HttpResponseBadRequest("Unknown key")
            # Scoped to the user's keys: someone else's key id is a 404, not a revocation.
            api_key = get_object_or_404(ApiKey, pk=key_id, user=request.user)
            api_key_revoke(api_key=api_key)
        else:
            return HttpResponseBadRequest("Unknown action")
    template = "settings/keys.html"
    if request.htmx:
        template += "#keys-panel"
    return render(
        request,
        template,
        {"keys": user_api_keys(user=request.user), "form": form, "created_key": created_key},
    )


@login_required
@require_POST
def project_switch(request):
    form = ProjectSwitchForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Missing project")
    # Only the user's own projects: anything else is a 404.
    project = get_object_or_404(user_projects(user=request.user), pk=form.cleaned_data["project"])
    default_project_set(user=request.user, project=project)
    if request.htmx:
        return HttpResponseClientRefresh()
    next_url = request.POST.get("next", "")
    # Only a path on this site: redirect() would take "abc" for a view name (a 500 when there
    # is none, another page when there is), and a relative path lands anywhere.
    if not next_url.startswith("/") or not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}
    ):
        next_url = "/inference/"
    return HttpResponseRedirect(next_url)
