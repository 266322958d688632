"""Which project a caller gets: organization membership and team membership both count, and
the API, the websocket and the pages choose the default project by one rule."""

import pytest
from asgiref.sync import sync_to_async

from billing.models import Membership
from billing.organizations import membership_set
from inference_app.accounts import default_project_set, project_create, team_add_member, team_create
from inference_app.gateway import errors, resolve_session_caller
from inference_app.models import Profile
from playground.selectors import current_project, user_projects
from tests.billing.conftest import make_org
from tests.inference_app.gateway_world import HELLO, TEXT_MODEL, post_chat, usage_rows


def assert_401(response) -> None:
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "invalid_api_key"


# --- organization membership ----------------------------------------------------------------
async def test_a_user_removed_from_the_organization_but_still_in_the_team_gets_401(
    world, fake_engine
):
    await Membership.objects.filter(organization=world.organization, user=world.user).adelete()
    for project in ("team-a/main", None):
        response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO}, project=project)
        assert_401(response)
    with pytest.raises(errors.GatewayError) as refused:
        await resolve_session_caller(world.user, None)
    assert refused.value.status == 401
    assert fake_engine.requests == []


async def test_membership_of_another_organization_does_not_open_this_ones_team(world, fake_engine):
    # The user is an admin elsewhere and still in team-a, whose organization removed them.
    await sync_to_async(_move_user_to_another_org)(world)
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})
    assert_401(response)


def _move_user_to_another_org(world) -> None:
    Membership.objects.filter(organization=world.organization, user=world.user).delete()
    membership_set(organization=make_org(name="Elsewhere"), user=world.user, role="admin")


async def test_a_plain_member_of_the_organization_and_team_is_served(world, fake_engine):
    await Membership.objects.filter(organization=world.organization, user=world.user).aupdate(
        role=Membership.Role.MEMBER
    )
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})
    assert response.status_code == 200


def test_the_project_switcher_lists_only_projects_of_organizations_the_user_is_in(world):
    paths = {p.path for p in user_projects(user=world.user)}
    assert paths == {"team-a/main", "team-a/second"}
    Membership.objects.filter(organization=world.organization, user=world.user).delete()
    assert list(user_projects(user=world.user)) == []
    assert current_project(user=world.user) is None


# --- one rule for the default project -------------------------------------------------------
def _teams_whose_ids_and_names_disagree(world) -> None:
    """A second organization with two teams: "zulu" made first (lower id), "alpha" second.
    Ordering by team id and by team name then picks different projects."""
    org = make_org(name="Second")
    membership_set(organization=org, user=world.user, role=Membership.Role.MEMBER)
    for team_name in ("zulu", "alpha"):
        team = team_create(organization=org, name=team_name)
        team_add_member(team=team, user=world.user)
        project_create(team=team, name="work")


async def _paths_chosen(world) -> tuple[str | None, str, str]:
    """(page/websocket, session caller, API without OpenAI-Project) for world's user."""
    page = await sync_to_async(current_project)(user=world.user)
    session = await resolve_session_caller(world.user, None)
    await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO}, project=None)
    row = (await usage_rows())[-1]
    return (
        page.path if page else None,
        f"{session.team}/{session.project}",
        f"{row.team}/{row.project}",
    )


async def test_without_a_default_project_every_path_picks_the_same_one(world, fake_engine):
    await sync_to_async(_teams_whose_ids_and_names_disagree)(world)
    # The world's own team-a (lowest id) leaves: the user keeps only zulu and alpha.
    await sync_to_async(lambda: world.project.team.members.remove(world.user))()
    await Profile.objects.filter(user=world.user).aupdate(default_project=None)
    page, session, api = await _paths_chosen(world)
    assert page == session == api == "alpha/work"  # the first in the switcher's order


async def test_a_default_project_in_a_team_the_user_left_falls_back_alike(world, fake_engine):
    await sync_to_async(_teams_whose_ids_and_names_disagree)(world)
    await sync_to_async(lambda: world.project.team.members.remove(world.user))()
    # The profile still names team-a/main, which the user may no longer use.
    page, session, api = await _paths_chosen(world)
    assert page == session == api == "alpha/work"


async def test_a_default_project_in_an_organization_that_removed_the_user_falls_back_alike(
    world, fake_engine
):
    await sync_to_async(_teams_whose_ids_and_names_disagree)(world)
    # Still in team-a, but no longer in its organization: team-a/main is out of bounds.
    await Membership.objects.filter(organization=world.organization, user=world.user).adelete()
    page, session, api = await _paths_chosen(world)
    assert page == session == api == "alpha/work"


async def test_a_usable_default_project_wins_everywhere(world, fake_engine):
    await sync_to_async(_teams_whose_ids_and_names_disagree)(world)
    await sync_to_async(default_project_set)(user=world.user, project=world.second_project)
    page, session, api = await _paths_chosen(world)
    assert page == session == api == "team-a/second"
