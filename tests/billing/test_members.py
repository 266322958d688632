"""The Members page over the real views and services: who may see and change it, the
last-admin rule, removal from the organization's teams, CSRF and bad input."""

import pytest
from django.conf import settings
from django.shortcuts import resolve_url
from django.test import Client

from billing.members import MemberChangeRefused, membership_remove, membership_role_set
from billing.models import Membership
from inference_app.accounts import team_add_member, team_create
from inference_app.models import TeamMembership
from tests.billing.conftest import make_org, make_user

pytestmark = pytest.mark.django_db

URL = "/billing/members/"
HTMX = {"HX-Request": "true"}


@pytest.fixture
def acme():
    """Acme with an admin (ada) and a member (max) in two of its teams; max is also in a team
    of another organization, which removal from Acme must leave alone."""
    org = make_org(name="Acme")
    ada = make_user(organization=org, role=Membership.Role.ADMIN, username="ada")
    ada.email = "ada@acme.test"
    ada.save(update_fields=["email"])
    max_ = make_user(organization=org, role=Membership.Role.MEMBER, username="max")
    for name in ("acme-research", "acme-ops"):
        team_add_member(team=team_create(organization=org, name=name), user=max_)
    elsewhere = make_org(name="Elsewhere")
    Membership.objects.create(organization=elsewhere, user=max_, role=Membership.Role.MEMBER)
    team_add_member(team=team_create(organization=elsewhere, name="elsewhere-lab"), user=max_)
    return org, ada, max_


def role_of(org, user) -> str | None:
    return (
        Membership.objects.filter(organization=org, user=user)
        .values_list("role", flat=True)
        .first()
    )


# --- who may see it --------------------------------------------------------------------------
def test_anonymous_users_get_the_sign_in_page(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(resolve_url(settings.LOGIN_URL) + "?next=")


def test_a_member_who_is_not_an_admin_gets_403_and_changes_nothing(client, acme):
    org, ada, max_ = acme
    client.force_login(max_)
    assert client.get(URL).status_code == 403
    assert client.get(URL, {"org": org.slug}).status_code == 403
    response = client.post(
        f"{URL}?org={org.slug}", {"action": "role", "user_id": max_.pk, "role": "admin"}
    )
    assert response.status_code == 403
    assert role_of(org, max_) == Membership.Role.MEMBER
    assert client.post(URL, {"action": "remove", "user_id": ada.pk}).status_code == 403
    assert role_of(org, ada) == Membership.Role.ADMIN


def test_an_admin_of_another_organization_can_neither_see_nor_touch_it(client, acme):
    org, ada, max_ = acme
    client.force_login(make_user(organization=make_org(name="Rival"), username="rex"))
    response = client.get(URL, {"org": org.slug})
    assert response.status_code == 403 and b"max" not in response.content
    # Named: 403. Unnamed: their own organization, where max is nobody: 404.
    remove = {"action": "remove", "user_id": max_.pk}
    assert client.post(f"{URL}?org={org.slug}", remove).status_code == 403
    assert client.post(URL, remove).status_code == 404
    own = client.get(URL)
    assert own.status_code == 200 and b"Acme" not in own.content and b"ada" not in own.content
    assert role_of(org, max_) == Membership.Role.MEMBER


# --- what an admin sees ----------------------------------------------------------------------
def test_admin_sees_members_roles_teams_and_joined(client, acme):
    org, ada, max_ = acme
    client.force_login(ada)
    response = client.get(URL)
    assert response.status_code == 200
    rows = {row.username: row for row in response.context["members"]}
    assert set(rows) == {"ada", "max"}
    assert rows["ada"].role == "admin" and rows["ada"].is_last_admin
    assert rows["max"].teams == ("acme-ops", "acme-research")  # this organization's only
    html = response.content.decode()
    assert "ada@acme.test" in html and "acme-research" in html and "elsewhere-lab" not in html
    assert max_.date_joined.strftime("%Y-%m-%d") in html
    assert 'href="/billing/members/"' in html  # the header's link


def test_the_header_links_members_for_admins_only(client, acme):
    org, ada, max_ = acme
    client.force_login(ada)
    assert 'href="/billing/members/"' in client.get("/billing/").content.decode()
    client.force_login(max_)
    assert "/billing/members/" not in client.get("/settings/keys/").content.decode()


# --- changing roles --------------------------------------------------------------------------
def test_admin_makes_a_member_an_admin_and_back_plain_post(client, acme):
    org, ada, max_ = acme
    client.force_login(ada)
    response = client.post(URL, {"action": "role", "user_id": max_.pk, "role": "admin"})
    assert response.status_code == 302 and response["Location"] == URL  # post/redirect/get
    assert role_of(org, max_) == Membership.Role.ADMIN
    page = client.get(URL).content.decode()
    assert "max is now an admin." in page
    client.post(URL, {"action": "role", "user_id": max_.pk, "role": "member"})
    assert role_of(org, max_) == Membership.Role.MEMBER


def test_htmx_gets_the_panel_with_its_notice(client, acme):
    org, ada, max_ = acme
    client.force_login(ada)
    response = client.post(
        URL, {"action": "role", "user_id": max_.pk, "role": "admin"}, headers=HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="members-panel"') and "<html" not in html
    assert "max is now an admin." in html
    assert role_of(org, max_) == Membership.Role.ADMIN


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_the_last_admin_cannot_be_demoted_or_removed(client, acme, htmx):
    org, ada, _ = acme
    client.force_login(ada)
    headers = HTMX if htmx else {}
    for data in (
        {"action": "role", "user_id": ada.pk, "role": "member"},
        {"action": "remove", "user_id": ada.pk},
    ):
        response = client.post(URL, data, headers=headers, follow=not htmx)
        assert response.status_code == 200
        assert "only admin" in response.content.decode()
        assert role_of(org, ada) == Membership.Role.ADMIN


def test_an_admin_may_step_down_while_another_admin_remains(client, acme):
    org, ada, max_ = acme
    membership_role_set(organization=org, user=max_, role="admin", by=ada)
    client.force_login(ada)
    response = client.post(URL, {"action": "role", "user_id": ada.pk, "role": "member"})
    # No longer an admin: sent away from a page they may not see.
    assert response.status_code == 302 and response["Location"] == "/inference/"
    assert role_of(org, ada) == Membership.Role.MEMBER
    assert client.get(URL).status_code == 403


# --- removing --------------------------------------------------------------------------------
def test_admin_removes_a_member_from_the_organization_and_its_teams(client, acme):
    org, ada, max_ = acme
    client.force_login(ada)
    response = client.post(URL, {"action": "remove", "user_id": max_.pk}, follow=True)
    assert response.status_code == 200
    assert "max was removed from Acme." in response.content.decode()
    assert role_of(org, max_) is None
    teams_left = set(TeamMembership.objects.filter(user=max_).values_list("team__name", flat=True))
    assert teams_left == {"elsewhere-lab"}  # another organization's team is not Acme's to touch
    assert [row.username for row in response.context["members"]] == ["ada"]


def test_removing_with_htmx_swaps_the_panel(client, acme):
    org, ada, max_ = acme
    client.force_login(ada)
    response = client.post(URL, {"action": "remove", "user_id": max_.pk}, headers=HTMX)
    assert response.status_code == 200
    assert "max was removed" in response.content.decode()
    assert role_of(org, max_) is None


def test_posts_need_the_csrf_token(acme):
    org, ada, max_ = acme
    client = Client(enforce_csrf_checks=True)
    client.force_login(ada)
    response = client.post(URL, {"action": "remove", "user_id": max_.pk})
    assert response.status_code == 403
    assert role_of(org, max_) == Membership.Role.MEMBER
    # With the token from the page, the same post works.
    client.get(URL)
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post(
        URL, {"action": "remove", "user_id": max_.pk, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302 and role_of(org, max_) is None


@pytest.mark.parametrize(
    "data",
    [
        {"action": "remove", "user_id": "abc"},
        {"action": "remove"},
        {"action": "explode", "user_id": "1"},
        {"action": "role", "user_id": "1"},
        {"action": "role", "user_id": "1", "role": "owner"},
        {"action": "remove", "user_id": "99999999999999999999999"},
    ],
    ids=["id-not-a-number", "no-id", "unknown-action", "no-role", "unknown-role", "huge-id"],
)
def test_bad_input_is_400(client, acme, data):
    _, ada, _ = acme
    client.force_login(ada)
    assert client.post(URL, data).status_code == 400


def test_someone_who_is_not_a_member_is_404(client, acme):
    org, ada, _ = acme
    client.force_login(ada)
    stranger = make_user(username="stranger")
    assert client.post(URL, {"action": "remove", "user_id": stranger.pk}).status_code == 404


# --- the services on their own --------------------------------------------------------------
def test_services_refuse_a_non_admin_and_a_non_member(acme):
    org, ada, max_ = acme
    with pytest.raises(MemberChangeRefused):
        membership_remove(organization=org, user=ada, by=max_)
    with pytest.raises(MemberChangeRefused):
        membership_role_set(organization=org, user=max_, role="admin", by=max_)
    with pytest.raises(MemberChangeRefused):
        membership_role_set(organization=org, user=max_, role="owner", by=ada)
    with pytest.raises(MemberChangeRefused):
        membership_remove(organization=org, user=make_user(username="nobody"), by=ada)
    assert role_of(org, ada) == "admin" and role_of(org, max_) == "member"
