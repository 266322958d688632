"""The Traces list's filters: a GET form, so every filter state is a real, shareable URL."""

from __future__ import annotations

from datetime import UTC, timedelta

from django import forms
from django.utils import timezone

from traces.models import Call
from traces.selectors import CallFilters, Cursor

RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_RANGE = "7d"
MICROS_PER_DOLLAR = 1_000_000


class CallFilterForm(forms.Form):
    range = forms.ChoiceField(
        required=False,
        choices=[
            ("1h", "Last hour"),
            ("24h", "Last 24 hours"),
            ("7d", "Last 7 days"),
            ("30d", "Last 30 days"),
        ],
        label="Time",
    )
    # Both given in UTC (the page says so); either one replaces the preset.
    since = forms.DateTimeField(required=False, label="Since (UTC)")
    until = forms.DateTimeField(required=False, label="Until (UTC)")
    model = forms.CharField(required=False, max_length=200)
    source = forms.ChoiceField(required=False, choices=[("", "All sources"), *Call.Source.choices])
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Call.Status.choices])
    user = forms.IntegerField(required=False, min_value=1)
    min_latency_ms = forms.IntegerField(
        required=False, min_value=0, max_value=2**31 - 1, label="Min latency (ms)"
    )
    min_cost = forms.DecimalField(
        required=False, min_value=0, max_digits=12, decimal_places=6, label="Min cost ($)"
    )
    q = forms.CharField(required=False, max_length=200, label="Search")
    before = forms.CharField(required=False, max_length=64)

    def clean_since(self):
        return _utc(self.cleaned_data.get("since"))

    def clean_until(self):
        return _utc(self.cleaned_data.get("until"))

    def clean_before(self):
        text = self.cleaned_data.get("before") or ""
        if not text:
            return None
        cursor = Cursor.parse(text)
        if cursor is None:
            raise forms.ValidationError("Not a page of this list.")
        return cursor

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            raise forms.ValidationError("“Since” is after “Until”.")
        return data

    def filters(self) -> CallFilters:
        """The selector's filters; call after is_valid()."""
        data = self.cleaned_data
        until = data.get("until")
        since = data.get("since")
        if since is None:
            end = until or timezone.now()
            since = end - RANGES[data.get("range") or DEFAULT_RANGE]
        min_cost = data.get("min_cost")
        return CallFilters(
            since=since,
            until=until,
            model=data.get("model", "").strip(),
            source=data.get("source", ""),
            status=data.get("status", ""),
            user_id=data.get("user"),
            min_latency_ms=data.get("min_latency_ms"),
            min_cost_micros=None if min_cost is None else int(min_cost * MICROS_PER_DOLLAR),
            q=data.get("q", "").strip(),
        )


def default_filters() -> CallFilters:
    """What the page shows when its form is invalid: the last 7 days, nothing else."""
    return CallFilters(since=timezone.now() - RANGES[DEFAULT_RANGE])


def _utc(value):
    # A naive time from a datetime-local input is read as UTC, as the label says.
    if value is not None and timezone.is_naive(value):
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC) if value is not None else None
