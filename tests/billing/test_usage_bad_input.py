"""The usage page and its CSV never answer 5xx to a hostile range or filter.

The page shows the form's error and the last 30 days (a filter is a GET form: the page is
still the right answer, with a message); the CSV answers 400 with the error as text, since a
file for a range the user did not ask for would be wrong without anyone noticing.
"""

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from billing.usage import settle_usage
from tests.billing.conftest import make_org, make_report, make_user

pytestmark = pytest.mark.django_db

PAGE, CSV = "/billing/usage/", "/billing/usage/export.csv"
TODAY = timezone.now().astimezone(UTC).date()

BAD_RANGES = [
    {"end": "0001-01-01"},
    {"end": "9999-12-31"},
    {"start": "0001-01-01"},
    {"start": "9999-12-31"},
    {"start": "9999-12-01", "end": "9999-12-31"},
    {"start": "0001-01-01", "end": "0001-01-05"},
    {"start": "0001-01-01", "end": "9999-12-31"},
    {"start": "2026-05-01", "end": "2026-04-01"},  # start after end
    {"start": "garbage"},
    {"end": "2024-02-30"},
    {"end": "10000-01-01"},
    {"end": "1e309"},
    {"group_by": "nothing"},
    {"model": "x" * 1000},
    {"model": "\x00"},
]


@pytest.fixture
def admin_client(client):
    org = make_org(plan_code="pro", name="Acme")
    settle_usage(make_report(org, model="m-alpha"))
    client.force_login(make_user(organization=org))
    return client


@pytest.mark.parametrize("params", BAD_RANGES)
def test_the_page_shows_the_error_and_the_last_30_days(admin_client, params):
    response = admin_client.get(PAGE, params)
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert response.context["filters"]["end"] == TODAY
    assert response.context["filters"]["start"] == TODAY - timedelta(days=29)


@pytest.mark.parametrize("params", BAD_RANGES)
def test_the_csv_is_a_400_with_the_error_as_text(admin_client, params):
    response = admin_client.get(CSV, params)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert "Content-Disposition" not in response
    assert response.content.strip()


def test_dates_far_from_today_name_the_dates_that_work(admin_client):
    text = admin_client.get(CSV, {"end": "9999-12-31"}).content.decode()
    assert "2000-01-01" in text


def test_a_range_of_a_year_around_today_still_works(admin_client):
    for start, end in [
        (TODAY - timedelta(days=365), TODAY),
        (TODAY - timedelta(days=30), TODAY + timedelta(days=30)),  # a month not over yet
        (TODAY.replace(day=1), TODAY.replace(day=1) + timedelta(days=27)),
    ]:
        params = {"start": start.isoformat(), "end": end.isoformat()}
        assert admin_client.get(CSV, params).status_code == 200
        page = admin_client.get(PAGE, params)
        assert page.status_code == 200 and 'role="alert"' not in page.content.decode()
        assert page.context["filters"]["start"] == start


def test_the_htmx_partial_shows_the_error_too(admin_client):
    response = admin_client.get(PAGE, {"end": "0001-01-01"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'role="alert"' in response.content.decode()
