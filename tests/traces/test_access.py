"""Who may read a project's calls: its team's members, and its organization's admins. Anyone
else gets a 404 (never a 403: a page must not tell that a call exists), and the list never
shows another team's rows."""

import pytest
from django.contrib.auth import get_user_model

from billing.models import Membership
from billing.organizations import membership_set
from inference_app.accounts import project_create, team_create
from inference_app.projects import projects_readable
from tests.traces.page_world import PASSWORD, listed, make_member, record_call

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_orgs():
    """acme: alice's team with a call, and bob in another team of acme; rival: eve, whose
    project has a call too."""
    alice, acme_project = make_member("alice")
    acme = acme_project.team.organization
    bob, bob_project = make_member("bob", org=acme)
    eve, rival_project = make_member("eve", role=Membership.Role.ADMIN)
    return {
        "alice": alice,
        "bob": bob,
        "eve": eve,
        "acme": acme,
        "acme_project": acme_project,
        "bob_project": bob_project,
        "rival_project": rival_project,
        "acme_call": record_call(acme_project, user=alice, answer="acme secret"),
        "bob_call": record_call(bob_project, user=bob, answer="bob's own"),
        "rival_call": record_call(rival_project, user=eve, answer="rival secret"),
    }


def login(client, username):
    assert client.login(username=username, password=PASSWORD)


def test_pages_need_a_signed_in_user(client, two_orgs):
    span = two_orgs["acme_call"].span_id
    for url in ("/traces/", f"/traces/{span}"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_another_organizations_call_is_a_404(client, two_orgs):
    login(client, "eve")  # an admin, but of rival
    span = two_orgs["acme_call"].span_id
    assert client.get(f"/traces/{span}").status_code == 404
    # The seed's link shape leads to the same answer.
    link = client.get(f"/team-alice/main/r/call/{span}", follow=True)
    assert link.status_code == 404
    assert client.get(f"/traces/{two_orgs['rival_call'].span_id}").status_code == 200


def test_another_teams_call_in_the_same_organization_is_a_404_for_a_member(client, two_orgs):
    login(client, "alice")  # a plain member of acme, not in bob's team
    assert client.get(f"/traces/{two_orgs['bob_call'].span_id}").status_code == 404
    assert client.get(f"/traces/{two_orgs['acme_call'].span_id}").status_code == 200


def test_the_list_never_shows_another_teams_rows(client, two_orgs):
    login(client, "alice")
    response = client.get("/traces/", {"since": "2000-01-01T00:00"})
    assert listed(response) == [two_orgs["acme_call"].span_id]
    html = response.content.decode()
    assert "bob" not in html.split('data-testid="trace-rows"')[1]
    # Naming a project the user may not read is a 404, not an empty list.
    for path in ("team-bob/main", "team-eve/main", "nope/nope"):
        assert client.get("/traces/", {"project": path}).status_code == 404
    # Text search looks in this project's bodies only.
    assert listed(client.get("/traces/", {"q": "secret"})) == [two_orgs["acme_call"].span_id]


def test_a_member_removed_from_the_organization_reads_nothing(client, two_orgs):
    Membership.objects.filter(user=two_orgs["alice"]).delete()
    login(client, "alice")
    assert client.get(f"/traces/{two_orgs['acme_call'].span_id}").status_code == 404
    response = client.get("/traces/")
    assert response.status_code == 200 and listed(response) == []


def test_an_org_admin_reads_every_project_of_the_organization(client, two_orgs):
    admin = get_user_model().objects.create_user(username="root", password=PASSWORD)
    membership_set(organization=two_orgs["acme"], user=admin, role=Membership.Role.ADMIN)
    login(client, "root")  # in no team at all
    for name in ("acme_call", "bob_call"):
        assert client.get(f"/traces/{two_orgs[name].span_id}").status_code == 200
    assert client.get(f"/traces/{two_orgs['rival_call'].span_id}").status_code == 404

    response = client.get("/traces/")
    html = response.content.decode()
    assert 'name="project"' in html  # a picker: the admin's projects are not in the header
    assert ">team-alice/main</option>" in html and ">team-bob/main</option>" in html
    assert "team-eve" not in html
    bob = client.get("/traces/", {"project": "team-bob/main"})
    assert listed(bob) == [two_orgs["bob_call"].span_id]


def test_projects_readable_is_usable_plus_administered(two_orgs):
    acme_extra = project_create(
        team=team_create(organization=two_orgs["acme"], name="lonely"), name="p"
    )
    readable = set(projects_readable(user_id=two_orgs["alice"].pk))
    assert readable == {two_orgs["acme_project"]}
    membership_set(
        organization=two_orgs["acme"], user=two_orgs["alice"], role=Membership.Role.ADMIN
    )
    readable = set(projects_readable(user_id=two_orgs["alice"].pk))
    assert readable == {two_orgs["acme_project"], two_orgs["bob_project"], acme_extra}
    assert set(projects_readable(user_id=two_orgs["eve"].pk)) == {two_orgs["rival_project"]}
