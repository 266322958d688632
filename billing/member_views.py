"""The Members page, for organization admins: who belongs, their role, removing someone.

A thin layer over billing.members; which organization is chosen as on the billing page
(`?org=<slug>` among the user's admin memberships; anyone else gets 403). Removal goes through
inference_app.accounts, which also takes the member out of the organization's teams and makes
this process's gateway forget their keys at once.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from billing.members import MemberChangeRefused, members_list, membership_role_set
from billing.models import Membership
from billing.organizations import is_org_admin
from billing.views import _billing_organization, _org_query
from inference_app.accounts import organization_member_remove
from inference_app.projects import team_names_by_user

PANEL = "billing/members.html#members-panel"
ROLE_PHRASES = {Membership.Role.ADMIN: "an admin", Membership.Role.MEMBER: "a member"}


class MemberActionForm(forms.Form):
    action = forms.ChoiceField(choices=[("role", "role"), ("remove", "remove")])
    # Ids are 64-bit: a larger number is bad input, not a database error.
    user_id = forms.IntegerField(min_value=1, max_value=2**63 - 1)
    role = forms.ChoiceField(choices=Membership.Role.choices, required=False)


@login_required
@require_http_methods(["GET", "POST"])
def members(request):
    organization, organizations = _billing_organization(request)
    notice = None
    if request.method == "POST":
        form = MemberActionForm(request.POST)
        if not form.is_valid() or (
            form.cleaned_data["action"] == "role" and not form.cleaned_data["role"]
        ):
            return HttpResponseBadRequest("Unknown member action")
        # Only this organization's members: anyone else's id is a 404.
        membership = get_object_or_404(
            Membership.objects.select_related("user"),
            organization=organization,
            user_id=form.cleaned_data["user_id"],
        )
        level, text = _apply(request, organization, membership.user, form.cleaned_data)
        if not is_org_admin(user=request.user, organization_id=organization.pk):
            # They removed or demoted themselves: this page is no longer theirs to see.
            messages.add_message(request, level, text)
            if request.htmx:
                return HttpResponseClientRedirect("/inference/")
            return redirect("/inference/")
        if not request.htmx:  # post/redirect/get: a reload does not repeat the action
            messages.add_message(request, level, text)
            query = _org_query(organization, organizations)
            return redirect(reverse("billing:members") + (f"?{query}" if query else ""))
        notice = {"tag": messages.DEFAULT_TAGS[level], "text": text}
    context = {
        "organization": organization,
        "organizations": organizations,
        "org_query": _org_query(organization, organizations),
        "members": members_list(
            organization=organization,
            teams_by_user=team_names_by_user(organization_id=organization.pk),
        ),
        "notice": notice,
    }
    return render(request, PANEL if request.htmx else "billing/members.html", context)


def _apply(request, organization, user, data) -> tuple[int, str]:
    """Do the action; (message level, text) for the admin either way."""
    name = user.get_username()
    try:
        if data["action"] == "remove":
            organization_member_remove(organization=organization, user=user, by=request.user)
            return messages.SUCCESS, f"{name} was removed from {organization.name}."
        membership_role_set(
            organization=organization, user=user, role=data["role"], by=request.user
        )
        return messages.SUCCESS, f"{name} is now {ROLE_PHRASES[data['role']]}."
    except MemberChangeRefused as refused:
        return messages.ERROR, refused.message
