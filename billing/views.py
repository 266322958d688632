"""The billing page and usage history, for organization admins only.

Thin views over billing.selectors. Which organization: the user's admin memberships; with
several, `?org=<slug>` picks one. Anyone else gets 403, anonymous users the sign-in page.
"""

import csv
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from billing.forms import date_range, usage_filters
from billing.models import Organization
from billing.money import micros_to_decimal
from billing.plan_changes import scheduled_change
from billing.selectors import (
    HOURLY_MAX_DAYS,
    billing_summary,
    latest_usage,
    lost_requests,
    organizations_administered,
    out_of_credits,
    usage_by_day,
    usage_by_hour,
    usage_filter_choices,
)

TABLE_ROW_LIMIT = 500


def _billing_organization(request) -> tuple[Organization, list[Organization]]:
    organizations = organizations_administered(user=request.user)
    slug = request.GET.get("org", "")
    if slug:
        chosen = [org for org in organizations if org.slug == slug]
    else:
        chosen = organizations[:1]
    if not chosen:
        raise PermissionDenied("Only an organization's admins can see its billing.")
    return chosen[0], organizations


def _org_query(organization: Organization, organizations: list[Organization]) -> str:
    """`org=<slug>` for links, when the user administers more than one organization."""
    return urlencode({"org": organization.slug}) if len(organizations) > 1 else ""


@require_GET
@login_required
def billing_home(request):
    organization, organizations = _billing_organization(request)
    return render(
        request,
        "billing/home.html",
        {
            "summary": billing_summary(organization=organization),
            "organization": organization,
            "out_of_credits": out_of_credits(organization=organization),
            "scheduled": scheduled_change(organization_id=organization.pk),
            "organizations": organizations,
            "org_query": _org_query(organization, organizations),
        },
    )


def _usage_rows(organization, filters):
    return usage_by_day(
        organization_id=organization.pk,
        start=filters["start"],
        end=filters["end"],
        group_by=filters["group_by"],
        model=filters["model"],
        project=filters["project"],
    )


def _hourly_chart_data(organization, filters) -> dict:
    """As _chart_data, one bucket per UTC hour (ranges of HOURLY_MAX_DAYS days or less)."""
    start = datetime.combine(filters["start"], time.min, tzinfo=UTC)
    hours = [start + timedelta(hours=i) for i in range(24 * _range_days(filters))]
    index = {hour: i for i, hour in enumerate(hours)}
    series: dict[str, dict[str, list[int]]] = {}
    for hour, key, cost, tokens in usage_by_hour(
        organization_id=organization.pk,
        start=filters["start"],
        end=filters["end"],
        group_by=filters["group_by"],
        model=filters["model"],
        project=filters["project"],
    ):
        group = series.setdefault(key, {"cost": [0] * len(hours), "tokens": [0] * len(hours)})
        i = index[hour.astimezone(UTC)]
        group["cost"][i] += cost
        group["tokens"][i] += tokens
    return {
        "bucket": "hour",
        "labels": [hour.strftime("%m-%d %H:00") for hour in hours],
        "groups": [{"key": key, **values} for key, values in sorted(series.items())],
    }


def _range_days(filters) -> int:
    return (filters["end"] - filters["start"]).days + 1


def _chart_data(rows, filters) -> dict:
    """Series per group for Chart.js: integer micro-dollars and tokens; the browser formats."""
    days = date_range(filters["start"], filters["end"])
    index = {day: i for i, day in enumerate(days)}
    series: dict[str, dict[str, list[int]]] = {}
    for row in rows:
        group = series.setdefault(row.key, {"cost": [0] * len(days), "tokens": [0] * len(days)})
        group["cost"][index[row.day]] += row.cost_micros
        group["tokens"][index[row.day]] += row.total_tokens
    return {
        "bucket": "day",
        "labels": [day.isoformat() for day in days],
        "groups": [{"key": key, **values} for key, values in sorted(series.items())],
    }


@require_GET
@login_required
# One URL answers htmx (rows only) and full-page requests: without Vary, Back could show the
# browser's cached rows with no page around them.
@vary_on_headers("HX-Request")
def billing_usage(request):
    organization, organizations = _billing_organization(request)
    form, filters = usage_filters(request.GET)
    rows = _usage_rows(organization, filters)
    query = request.GET.copy()
    if len(organizations) > 1:
        query["org"] = organization.slug
    context = {
        "organization": organization,
        "organizations": organizations,
        "org_query": _org_query(organization, organizations),
        "form": form,
        "filters": filters,
        "choices": usage_filter_choices(
            organization_id=organization.pk, start=filters["start"], end=filters["end"]
        ),
        "rows": rows[::-1][:TABLE_ROW_LIMIT],
        "rows_truncated": len(rows) > TABLE_ROW_LIMIT,
        "totals": {
            "requests": sum(r.requests for r in rows),
            "tokens": sum(r.total_tokens for r in rows),
            "cost_micros": sum(r.cost_micros for r in rows),
        },
        "chart": _hourly_chart_data(organization, filters)
        if _range_days(filters) <= HOURLY_MAX_DAYS
        else _chart_data(rows, filters),
        "activity": latest_usage(organization_id=organization.pk),
        "lost": lost_requests(
            organization_id=organization.pk,
            start=filters["start"],
            end=filters["end"],
            model=filters["model"],
            project=filters["project"],
        ),
        "export_query": query.urlencode(),
    }
    template = "billing/usage.html#results" if request.htmx else "billing/usage.html"
    return render(request, template, context)


def _csv_safe(text: str) -> str:
    # Spreadsheets run cells that start like a formula; names are plain text here.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _form_errors_text(form) -> str:
    lines = list(form.non_field_errors())
    lines += [
        f"{form[name].label}: {error}"
        for name in form.errors
        if name != "__all__"
        for error in form.errors[name]
    ]
    return "\n".join(lines) + "\n"


@require_GET
@login_required
def billing_usage_export(request):
    organization, _ = _billing_organization(request)
    form, filters = usage_filters(request.GET)
    if form.errors:
        # The page falls back to the last 30 days with a message; a file cannot show one, and
        # a download for another range than the one asked for would go unnoticed.
        return HttpResponseBadRequest(
            _form_errors_text(form), content_type="text/plain; charset=utf-8"
        )
    rows = _usage_rows(organization, filters)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="usage-{organization.slug}-{filters["start"]}-{filters["end"]}.csv"'
    )
    writer = csv.writer(response)
    group_label = "model" if filters["group_by"] == "model" else "team/project"
    writer.writerow(
        ["day", group_label, "requests", "prompt_tokens", "completion_tokens", "cost_usd"]
    )
    for row in rows:
        writer.writerow(
            [
                row.day.isoformat(),
                _csv_safe(row.key),
                row.requests,
                row.prompt_tokens,
                row.completion_tokens,
                micros_to_decimal(row.cost_micros),
            ]
        )
    return response
