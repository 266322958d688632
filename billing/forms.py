"""The usage history's filters (a GET form: every filter state is a real, shareable URL)."""

from datetime import UTC, date, timedelta

from django import forms
from django.utils import timezone

from billing.selectors import GROUP_BY_MODEL, GROUP_BY_PROJECT

DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 366


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

    def clean(self):
        data = super().clean()
        today = timezone.now().astimezone(UTC).date()
        end = data.get("end") or today
        start = data.get("start") or end - timedelta(days=DEFAULT_RANGE_DAYS - 1)
        if start > end:
            raise forms.ValidationError("The start date is after the end date.")
        if (end - start).days >= MAX_RANGE_DAYS:
            raise forms.ValidationError(f"Choose a range of at most {MAX_RANGE_DAYS} days.")
        data["start"], data["end"] = start, end
        data["group_by"] = data.get("group_by") or GROUP_BY_MODEL
        return data


def usage_filters(params) -> tuple[UsageFilterForm, dict]:
    """The bound form and the filters to use (the defaults when the form is invalid)."""
    form = UsageFilterForm(params)
    if form.is_valid():
        return form, form.cleaned_data
    today = timezone.now().astimezone(UTC).date()
    return form, {
        "start": today - timedelta(days=DEFAULT_RANGE_DAYS - 1),
        "end": today,
        "group_by": GROUP_BY_MODEL,
        "model": "",
        "project": "",
    }


def date_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]
