"""The usage history's filters (a GET form: every filter state is a real, shareable URL)."""

from datetime import UTC, date, timedelta

from django import forms
from django.utils import timezone

from billing.selectors import GROUP_BY_MODEL, GROUP_BY_PROJECT

DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 366
EARLIEST_DAY = date(2000, 1, 1)


class UsageFilterForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    group_by = forms.ChoiceField(
        required=False,
        choices=[(GROUP_BY_MODEL, "Model"), (GROUP_BY_PROJECT, "Project")],
        label="Group by",
    )
    model = forms.CharField(required=False, max_length=200)
    project = forms.CharField(required=False, max_length=201)

    def clean_start(self):
        return _in_window(self.cleaned_data.get("start"))

    def clean_end(self):
        return _in_window(self.cleaned_data.get("end"))

    def clean(self):
        data = super().clean()
        if self.errors:
            # A date left out of cleaned_data would be replaced by its default below.
            return data
        today = _today()
        end = data.get("end") or today
        start = data.get("start") or end - timedelta(days=DEFAULT_RANGE_DAYS - 1)
        if start > end:
            raise forms.ValidationError("The start date is after the end date.")
        if (end - start).days >= MAX_RANGE_DAYS:
            raise forms.ValidationError(f"Choose a range of at most {MAX_RANGE_DAYS} days.")
        data["start"], data["end"] = start, end
        data["group_by"] = data.get("group_by") or GROUP_BY_MODEL
        return data


def _today() -> date:
    return timezone.now().astimezone(UTC).date()


def _in_window(day: date | None) -> date | None:
    """`day`, when it is one a usage range can use: from EARLIEST_DAY to a year after today.

    Dates at the calendar's ends (0001-01-01, 9999-12-31) would overflow when the range's
    default start or its last day's end is computed; no usage exists that far off anyway.
    """
    if day is None:
        return None
    latest = _today() + timedelta(days=MAX_RANGE_DAYS)
    if not EARLIEST_DAY <= day <= latest:
        raise forms.ValidationError(
            f"Choose a date between {EARLIEST_DAY.isoformat()} and {latest.isoformat()}."
        )
    return day


def usage_filters(params) -> tuple[UsageFilterForm, dict]:
    """The bound form and the filters to use (the defaults when the form is invalid)."""
    form = UsageFilterForm(params)
    if form.is_valid():
        return form, form.cleaned_data
    today = _today()
    return form, {
        "start": today - timedelta(days=DEFAULT_RANGE_DAYS - 1),
        "end": today,
        "group_by": GROUP_BY_MODEL,
        "model": "",
        "project": "",
    }


def date_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


class PlanChoiceForm(forms.Form):
    """Which self-serve plan to move to (the confirmation step posts it back)."""

    plan = forms.ChoiceField(choices=[("free", "Free"), ("pro", "Pro")])


class SpendCapForm(forms.Form):
    """Pro's monthly spend cap in dollars (the service checks the plan's limits)."""

    cap_usd = forms.DecimalField(
        label="Monthly spend cap (USD)", min_value=0, max_digits=12, decimal_places=2
    )

    @property
    def cap_micros(self) -> int:
        return int(self.cleaned_data["cap_usd"] * 1_000_000)
