"""Fixtures for the web UI tests: users with an organization, and bench's fake engine."""

import pytest
from django.contrib.auth import get_user_model

from billing.models import Membership
from billing.organizations import membership_set, organization_create
from inference_app.accounts import default_project_set, project_create, team_add_member, team_create
from inference_app.gateway import callers, model_list, routing


@pytest.fixture(autouse=True)
def _fresh_gateway_caches():
    # The gateway caches projects and routes for a few seconds; each test has its own rows.
    for module in (callers, model_list, routing):
        module.clear_caches()
    yield
    for module in (callers, model_list, routing):
        module.clear_caches()


def make_member(username: str, *, role: str = Membership.Role.ADMIN, slug: str | None = None):
    """A user with an organization (Free plan, credits), a team and a default project."""
    user = get_user_model().objects.create_user(username=username, password="pw-" + username)
    org = organization_create(name=username, slug=slug or f"org-{username}")
    membership_set(organization=org, user=user, role=role)
    team = team_create(organization=org, name=f"team-{username}")
    team_add_member(team=team, user=user)
    project = project_create(team=team, name="main")
    default_project_set(user=user, project=project)
    return user, project


@pytest.fixture
def member(db):
    return make_member("alice")


@pytest.fixture(scope="module")
def fake_engine(tmp_path_factory):
    """bench/fake_engine.py in a subprocess: "slow-model" streams slowly, anything else fast."""
    from tests.support.engines import start_fake_engine

    engine = start_fake_engine(
        var_dir=tmp_path_factory.mktemp("fake-engine"),
        tokens=8,
        tokens_per_second=200,
        model_overrides={"slow-model": {"delay_ms": 300, "tokens": 60, "tokens_per_second": 40}},
    )
    yield engine
    engine.stop()
