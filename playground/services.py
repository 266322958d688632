"""Writes started from the web UI (sign-up)."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.text import slugify

from billing.models import Membership, Organization
from billing.organizations import membership_set, organization_create
from inference_app.accounts import default_project_set, project_create, team_add_member, team_create
from inference_app.models import Team

DEFAULT_PROJECT_NAME = "default"


def _free_slug(base: str, taken) -> str:
    slug, n = base, 1
    while taken(slug):
        n += 1
        slug = f"{base}-{n}"
    return slug


def user_signup(*, username: str, email: str, password: str):
    """A new user with an organization of their own on the Free plan (credits included), a team
    named after them, and a default project, so the Playground works right after sign-up."""
    base = slugify(username) or "user"
    with transaction.atomic():
        user = get_user_model().objects.create_user(
            username=username, email=email, password=password
        )
        org_slug = _free_slug(base, lambda s: Organization.objects.filter(slug=s).exists())
        org = organization_create(name=f"{username}'s organization", slug=org_slug)
        membership_set(organization=org, user=user, role=Membership.Role.ADMIN)
        team_name = _free_slug(base, lambda s: Team.objects.filter(name=s).exists())
        team = team_create(organization=org, name=team_name)
        team_add_member(team=team, user=user)
        project = project_create(team=team, name=DEFAULT_PROJECT_NAME)
        default_project_set(user=user, project=project)
    return user
