"""Which projects a user may use, and which one is theirs by default: one rule for the API,
the websocket and the pages.

A user may use a project when they belong to its team AND to the organization that owns the
team. Team membership alone is not enough: an organization admin who removes someone must end
their access even if a team membership was left behind.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from billing.models import Membership
from inference_app.models import Profile, Project, TeamMembership


def projects_usable(*, user_id: int) -> QuerySet[Project]:
    """The user's projects, in the order the project switcher shows them (team, then name)."""
    return (
        Project.objects.filter(
            team__teammembership__user_id=user_id,
            team__organization__memberships__user_id=user_id,
        )
        .select_related("team__organization__plan")
        .order_by("team__name", "name", "pk")
    )


def projects_readable(*, user_id: int) -> QuerySet[Project]:
    """Projects whose calls the user may read: those they may use, and every project of the
    organizations they administer (an admin answers for all of its teams' traffic)."""
    usable = projects_usable(user_id=user_id).values("pk")
    administered = Membership.objects.filter(user_id=user_id, role=Membership.Role.ADMIN).values(
        "organization_id"
    )
    return (
        Project.objects.filter(Q(pk__in=usable) | Q(team__organization_id__in=administered))
        .select_related("team__organization")
        .order_by("team__name", "name", "pk")
    )


def project_for_user(*, user_id: int, path: str | None) -> Project | None:
    """The project `path` ("team/project") names, if the user may use it; without a path, the
    profile's default while still usable, else the first usable one; None when there is none."""
    usable = projects_usable(user_id=user_id)
    if path is not None:
        team_name, slash, project_name = path.partition("/")
        if not slash or not team_name or not project_name or "/" in project_name:
            return None
        return usable.filter(team__name=team_name, name=project_name).first()
    default_id = (
        Profile.objects.filter(user_id=user_id).values_list("default_project_id", flat=True).first()
    )
    if default_id is not None:
        project = usable.filter(pk=default_id).first()
        if project is not None:
            return project
    return usable.first()


def team_names_by_user(*, organization_id: int) -> dict[int, list[str]]:
    """For each user in one of the organization's teams, the names of those teams (sorted)."""
    names: dict[int, list[str]] = {}
    rows = (
        TeamMembership.objects.filter(team__organization_id=organization_id)
        .order_by("team__name")
        .values_list("user_id", "team__name")
    )
    for user_id, team_name in rows:
        names.setdefault(user_id, []).append(team_name)
    return names
