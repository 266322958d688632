"""Services for teams, projects, profiles and API keys."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from billing.members import membership_remove
from billing.models import Organization
from inference_app.gateway.callers import forget_key, forget_user
from inference_app.models import (
    API_KEY_LOOKUP_CHARS,
    ApiKey,
    Profile,
    Project,
    Team,
    TeamMembership,
    hash_api_key,
)


def team_create(*, organization: Organization, name: str) -> Team:
    return Team.objects.create(organization=organization, name=name)


def team_add_member(*, team: Team, user: AbstractBaseUser) -> None:
    TeamMembership.objects.get_or_create(team=team, user=user)


def project_create(*, team: Team, name: str, concurrency_limit: int | None = None) -> Project:
    return Project.objects.create(team=team, name=name, concurrency_limit=concurrency_limit)


def profile_get(*, user: AbstractBaseUser) -> Profile:
    profile, _ = Profile.objects.get_or_create(user=user)
    return profile


def default_project_set(*, user: AbstractBaseUser, project: Project) -> None:
    profile = profile_get(user=user)
    profile.default_project = project
    profile.save(update_fields=["default_project"])


def api_key_create(*, user: AbstractBaseUser, name: str = "") -> tuple[ApiKey, str]:
    """A new key for `user`. Returns the row and the raw key, which is never stored or shown again."""
    raw_key = ApiKey.generate_raw_key()
    api_key = ApiKey.objects.create(
        user=user,
        name=name,
        prefix=raw_key[:API_KEY_LOOKUP_CHARS],
        key_hash=hash_api_key(raw_key),
    )
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> None:
    with transaction.atomic():
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        # This process's gateway forgets it at once (others within GATEWAY_CACHE_SECONDS).
        transaction.on_commit(lambda: forget_key(api_key.prefix))


def organization_member_remove(*, organization: Organization, user: AbstractBaseUser, by) -> None:
    """Remove `user` from the organization and from its teams, as admin `by`.

    Raises billing.members.MemberChangeRefused for the last admin. The gateway already refuses
    a user outside the team's organization; leaving the teams too keeps the member lists true.
    Their keys stop working at once in this process (others within GATEWAY_CACHE_SECONDS).
    """
    with transaction.atomic():
        membership_remove(organization=organization, user=user, by=by)
        TeamMembership.objects.filter(team__organization=organization, user=user).delete()
        transaction.on_commit(lambda: forget_user(user.pk))
