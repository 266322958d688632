"""An admin removes a member on the Members page: the member's API key and signed-in session
stop working on the very next request in this process, although both were cached."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from billing.models import Membership
from billing.organizations import membership_set
from inference_app.accounts import api_key_create, team_add_member
from inference_app.gateway import errors, resolve_session_caller, settlement
from tests.inference_app.gateway_world import HELLO, TEXT_MODEL, post_chat

BODY = {"model": TEXT_MODEL, "messages": HELLO}


def _add_member(world):
    """bob: a plain member of the world's organization and of team-a, with a key."""
    bob = get_user_model().objects.create_user("bob", password="pw-123456789")
    membership_set(organization=world.organization, user=bob, role=Membership.Role.MEMBER)
    team_add_member(team=world.project.team, user=bob)
    _, raw_key = api_key_create(user=bob, name="bob's laptop")
    return bob, raw_key


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
async def test_a_removed_members_key_gets_401_on_the_next_request(world, fake_engine, htmx):
    bob, bob_key = await sync_to_async(_add_member)(world)
    headers = {"Authorization": f"Bearer {bob_key}"}
    # Served, so the gateway now caches bob's key and project.
    for project in ("team-a/main", None):
        first = await post_chat(None, BODY, headers={**headers, "OpenAI-Project": project or ""})
        assert first.status_code == 200, first.content
    assert (await resolve_session_caller(bob, None)).project == "main"
    # The usage rows are written first: the test database (SQLite in memory, shared cache)
    # locks a table for readers while another connection writes it.
    await settlement.drain()

    admin = AsyncClient()
    await admin.aforce_login(world.user)
    removed = await admin.post(
        "/billing/members/",
        {"action": "remove", "user_id": bob.pk},
        headers={"HX-Request": "true"} if htmx else {},
    )
    assert removed.status_code == (200 if htmx else 302)

    for project in ("team-a/main", ""):
        after = await post_chat(None, BODY, headers={**headers, "OpenAI-Project": project})
        assert after.status_code == 401
        assert after.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(errors.GatewayError) as refused:
        await resolve_session_caller(bob, None)
    assert refused.value.status == 401
    # The admin's own key, cached alongside, still works.
    assert (await post_chat(world, BODY)).status_code == 200
