"""The plan page: every member of an organization sees its plan; only its admins change it.

Thin views over billing.plan_changes. A change of plan goes through a confirmation page (GET)
that shows what will be charged and granted, then its form (POST). A member's POST is refused
with 403 and changes nothing.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from billing.forms import PlanChoiceForm, SpendCapForm
from billing.models import Organization
from billing.money import micros_to_decimal
from billing.organizations import is_org_admin
from billing.plan_changes import (
    PlanChangeRefused,
    plan_change_cancel,
    plan_change_request,
    plan_history,
    plan_offer,
    plan_offers,
    scheduled_change,
    spend_cap_limits,
    spend_cap_set,
)
from billing.selectors import organizations_of_member, out_of_credits


def _member_organization(request) -> tuple[Organization, list[Organization], bool]:
    """The organization (?org=<slug> among the user's), all of them, and whether they admin it."""
    organizations = organizations_of_member(user=request.user)
    slug = request.GET.get("org") or request.POST.get("org") or ""
    chosen = [o for o in organizations if o.slug == slug] if slug else organizations[:1]
    if not chosen:
        raise PermissionDenied("Only an organization's members can see its plan.")
    organization = chosen[0]
    return (
        organization,
        organizations,
        is_org_admin(user=request.user, organization_id=organization.pk),
    )


def _admin_organization(request) -> Organization:
    organization, _, admin = _member_organization(request)
    if not admin:
        raise PermissionDenied("Only an organization's admins can change its plan.")
    return organization


def _plan_url(organization: Organization) -> str:
    return reverse("billing:plan") + f"?org={organization.slug}"


@login_required
@require_http_methods(["GET"])
def plan_page(request):
    organization, organizations, admin = _member_organization(request)
    limits = spend_cap_limits(organization=organization)
    return render(
        request,
        "billing/plan.html",
        {
            "organization": organization,
            "organizations": organizations,
            "org_query": f"org={organization.slug}" if len(organizations) > 1 else "",
            "is_admin": admin,
            "offers": plan_offers(organization=organization) if admin else [],
            "scheduled": scheduled_change(organization_id=organization.pk),
            "cap_limits": limits,
            "cap_bounds_usd": [micros_to_decimal(m) for m in limits] if limits else None,
            "cap_form": SpendCapForm(
                initial={"cap_usd": micros_to_decimal(organization.monthly_spend_cap_micros)}
            )
            if limits
            else None,
            "history": plan_history(organization_id=organization.pk),
            "out_of_credits": out_of_credits(organization=organization),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def plan_change(request):
    organization = _admin_organization(request)
    form = PlanChoiceForm(request.POST if request.method == "POST" else request.GET)
    if not form.is_valid():
        messages.error(request, "Choose Free or Pro.")
        return redirect(_plan_url(organization))
    plan_code = form.cleaned_data["plan"]
    try:
        if request.method == "POST":
            change = plan_change_request(
                organization=organization, plan_code=plan_code, user=request.user
            )
            if change.status == change.Status.SCHEDULED:
                messages.success(
                    request,
                    f"Your move to {change.to_plan.name} is scheduled for "
                    f"{change.effective_at:%Y-%m-%d} (00:00 UTC).",
                )
            else:
                messages.success(request, f"You are now on the {change.to_plan.name} plan.")
            return redirect(_plan_url(organization))
        offer = plan_offer(organization=organization, plan_code=plan_code)
    except PlanChangeRefused as refused:
        messages.error(request, str(refused))
        return redirect(_plan_url(organization))
    return render(
        request,
        "billing/plan_confirm.html",
        {"organization": organization, "offer": offer, "current": organization.plan},
    )


@login_required
@require_POST
def plan_cancel(request):
    organization = _admin_organization(request)
    try:
        change = plan_change_cancel(organization=organization, user=request.user)
        messages.success(request, f"The move to {change.to_plan.name} is cancelled.")
    except PlanChangeRefused as refused:
        messages.error(request, str(refused))
    return redirect(_plan_url(organization))


@login_required
@require_POST
def spend_cap(request):
    organization = _admin_organization(request)
    form = SpendCapForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter the monthly spend cap in dollars, e.g. 250.")
        return redirect(_plan_url(organization))
    try:
        spend_cap_set(organization=organization, cap_micros=form.cap_micros, user=request.user)
        organization.refresh_from_db()
        messages.success(request, "The monthly spend cap is changed.")
    except PlanChangeRefused as refused:
        messages.error(request, str(refused))
    return redirect(_plan_url(organization))
