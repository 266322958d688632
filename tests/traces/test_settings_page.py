"""/traces/settings: team members see the body switch and the retention period; only the
organization's admins change them; bad values and other organizations change nothing."""

import pytest
from django.contrib.auth import get_user_model

from billing.models import Membership
from billing.organizations import membership_set, organization_create
from inference_app.accounts import project_create, team_add_member, team_create
from inference_app.models import Project
from traces.models import RetentionPolicy
from traces.retention import retention_days_for

pytestmark = pytest.mark.django_db

URL = "/traces/settings"


@pytest.fixture
def acme():
    User = get_user_model()
    org = organization_create(name="Acme", slug="acme")
    team = team_create(organization=org, name="acme-lab")
    project = project_create(team=team, name="chat")
    admin = User.objects.create_user("ada", password="pw")
    member = User.objects.create_user("max", password="pw")
    for user, role in ((admin, Membership.Role.ADMIN), (member, Membership.Role.MEMBER)):
        membership_set(organization=org, user=user, role=role)
        team_add_member(team=team, user=user)
    return org, project, admin, member


def post(client, data, query=""):
    return client.post(URL + query, data)


def test_member_sees_the_settings_read_only_and_cannot_change_them(client, acme):
    org, project, _admin, member = acme
    client.force_login(member)
    page = client.get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Store request and response bodies" in html
    assert "disabled" in html and "only your organization's admins" in html
    assert 'name="retention_days"' not in html  # the period is shown, not editable

    response = post(client, {"retention_days": "5"})  # box unchecked: would turn bodies off

    assert response.status_code == 403
    project.refresh_from_db()
    assert project.store_call_bodies is True
    assert not RetentionPolicy.objects.filter(organization_id=org.pk).exists()


def test_admin_turns_bodies_off_and_sets_the_retention(client, acme):
    org, project, admin, _member = acme
    client.force_login(admin)
    assert 'name="retention_days"' in client.get(URL).content.decode()

    response = post(client, {"retention_days": "7"})

    assert response.status_code == 302
    project.refresh_from_db()
    assert project.store_call_bodies is False
    assert retention_days_for(organization_id=org.pk) == 7
    page = client.get(response["Location"]).content.decode()
    assert "Trace settings saved." in page
    assert "checked" not in page

    post(client, {"store_call_bodies": "on", "retention_days": "365"})
    project.refresh_from_db()
    assert project.store_call_bodies is True
    assert retention_days_for(organization_id=org.pk) == 365


@pytest.mark.parametrize("days", ["0", "3651", "abc", "", "-3", "1.5"])
def test_bad_retention_is_refused_and_nothing_changes(client, acme, days):
    org, project, admin, _member = acme
    RetentionPolicy.objects.create(organization_id=org.pk, days=30)
    client.force_login(admin)

    response = post(client, {"retention_days": days})  # bodies box off as well

    assert response.status_code == 400
    assert 'class="form-error"' in response.content.decode()
    project.refresh_from_db()
    assert project.store_call_bodies is True
    assert retention_days_for(organization_id=org.pk) == 30


def test_another_organizations_admin_cannot_see_or_touch_this_one(client, acme):
    org, project, _admin, _member = acme
    User = get_user_model()
    other = organization_create(name="Other", slug="other")
    stranger = User.objects.create_user("eve", password="pw")
    membership_set(organization=other, user=stranger, role=Membership.Role.ADMIN)
    team = team_create(organization=other, name="other-lab")
    team_add_member(team=team, user=stranger)
    own = project_create(team=team, name="own")
    client.force_login(stranger)

    query = "?project=acme-lab/chat"
    assert client.get(URL + query).status_code == 404
    assert post(client, {"retention_days": "1"}, query).status_code == 404
    # Without a project named, the page is about the stranger's own project only.
    assert post(client, {"retention_days": "2"}).status_code == 302

    project.refresh_from_db()
    assert project.store_call_bodies is True
    assert retention_days_for(organization_id=org.pk) != 1
    assert not RetentionPolicy.objects.filter(organization_id=org.pk).exists()
    assert retention_days_for(organization_id=other.pk) == 2
    assert Project.objects.get(pk=own.pk).store_call_bodies is False


def test_login_required(client):
    response = client.get(URL)
    assert response.status_code == 302 and "login" in response["Location"]


LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.mark.browser
@pytest.mark.parametrize("width", [1440, 390])
def test_admin_changes_the_settings_in_a_browser(
    transactional_db, acme, live_server, chromium_executable, artifacts_dir, width
):
    from playwright.sync_api import expect, sync_playwright

    org, project, _admin, _member = acme
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(f"{live_server.url}/accounts/login/?next={URL}")
            page.fill("input[name=username]", "ada")
            page.fill("input[name=password]", "pw")
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_server.url}{URL}")
            box = page.get_by_test_id("store-bodies")
            expect(box).to_be_checked()
            expect(page.get_by_text("within 5 seconds")).to_be_visible()
            page.screenshot(path=str(artifacts_dir / f"trace-settings-{width}.png"), full_page=True)
            box.uncheck()
            page.get_by_test_id("retention-days").fill("14")
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_text("Trace settings saved.")).to_be_visible()
            expect(page.get_by_test_id("store-bodies")).not_to_be_checked()
            expect(page.get_by_test_id("retention-days")).to_have_value("14")
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            assert errors == []
        finally:
            browser.close()
    project.refresh_from_db()
    assert project.store_call_bodies is False
    assert retention_days_for(organization_id=org.pk) == 14
