"""The traces settings page (/traces/settings): the project's body switch and the
organization's retention period.

Members of the project's team see both; only the organization's admins change them (anyone
else's POST is a 403 and changes nothing). The project is the user's current one, or
`?project=team/name` among the projects they may use: another organization's project is a 404.
"""

from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from billing.organizations import is_org_admin
from inference_app.gateway import callers
from inference_app.models import Project
from inference_app.projects import project_for_user
from traces.retention import MAX_DAYS, MIN_DAYS, retention_days_for, retention_policy_set


class TraceSettingsForm(forms.Form):
    store_call_bodies = forms.BooleanField(required=False)
    retention_days = forms.IntegerField(
        min_value=MIN_DAYS,
        max_value=MAX_DAYS,
        error_messages={
            "required": "Enter a retention period in days.",
            "invalid": "Enter the retention period as a whole number of days.",
            "min_value": f"Keep calls for at least {MIN_DAYS} day.",
            "max_value": f"Keep calls for at most {MAX_DAYS} days.",
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def trace_settings(request):
    path = request.GET.get("project") or None
    project = project_for_user(user_id=request.user.pk, path=path)
    if project is None:
        raise Http404("No such project")
    organization_id = project.team.organization_id
    is_admin = is_org_admin(user=request.user, organization_id=organization_id)
    days = retention_days_for(organization_id=organization_id)
    form = TraceSettingsForm(
        initial={"store_call_bodies": project.store_call_bodies, "retention_days": days}
    )
    status = 200
    if request.method == "POST":
        if not is_admin:
            raise PermissionDenied("Only the organization's admins change trace settings.")
        form = TraceSettingsForm(request.POST)
        if form.is_valid():
            _apply(project, organization_id, form.cleaned_data)
            messages.success(request, "Trace settings saved.")
            query = urlencode({"project": path}) if path else ""
            return redirect(reverse("traces_settings") + (f"?{query}" if query else ""))
        status = 400
    context = {
        "project": project,
        "project_query": urlencode({"project": path}) if path else "",
        "is_admin": is_admin,
        "form": form,
        "retention_days": days,
        "min_days": MIN_DAYS,
        "max_days": MAX_DAYS,
        "cache_seconds": int(settings.GATEWAY_CACHE_SECONDS),
    }
    return render(request, "traces/settings.html", context, status=status)


def _apply(project: Project, organization_id: int, data: dict) -> None:
    with transaction.atomic():
        Project.objects.filter(pk=project.pk).update(store_call_bodies=data["store_call_bodies"])
        retention_policy_set(organization_id=organization_id, days=data["retention_days"])
    # This process's gateway (the Playground's) reads the project again at once; other
    # processes within GATEWAY_CACHE_SECONDS, when their cached caller expires.
    for user_id in project.team.members.values_list("pk", flat=True):
        callers.forget_user(user_id)
