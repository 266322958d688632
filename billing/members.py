"""Who belongs to an organization: the Members page's read and an admin's changes.

An organization always keeps at least one admin: the last one can be neither removed nor
demoted. Teams live above billing (in inference_app), so this module knows them only as the
names a caller passes in; removing someone from the organization's teams as well is
inference_app.accounts.organization_member_remove, which calls membership_remove.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime

from django.db import transaction

from billing.models import Membership, Organization

LAST_ADMIN_REMOVE = (
    "{name} is the organization's only admin and cannot be removed: make another member an "
    "admin first."
)
LAST_ADMIN_DEMOTE = (
    "{name} is the organization's only admin: make another member an admin before changing "
    "this role."
)


class MemberChangeRefused(Exception):
    """A change the rules forbid; the message is meant for the admin who asked for it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclasses.dataclass(frozen=True)
class MemberRow:
    user_id: int
    username: str
    email: str
    role: str
    role_label: str
    joined: datetime  # when the account was created (memberships carry no date of their own)
    teams: tuple[str, ...]
    is_last_admin: bool

    @property
    def is_admin(self) -> bool:
        return self.role == Membership.Role.ADMIN


def members_list(
    *, organization: Organization, teams_by_user: Mapping[int, list[str]] | None = None
) -> list[MemberRow]:
    """The organization's members, admins first, then by username; `teams_by_user` gives the
    names of each user's teams in this organization."""
    memberships = list(
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("role", "user__username")  # "admin" sorts before "member"
    )
    admins = sum(1 for m in memberships if m.role == Membership.Role.ADMIN)
    teams_by_user = teams_by_user or {}
    return [
        MemberRow(
            user_id=m.user_id,
            username=m.user.get_username(),
            email=m.user.email,
            role=m.role,
            role_label=m.get_role_display(),
            joined=m.user.date_joined,
            teams=tuple(teams_by_user.get(m.user_id, ())),
            is_last_admin=m.role == Membership.Role.ADMIN and admins == 1,
        )
        for m in memberships
    ]


def _locked_membership(*, organization: Organization, user, by) -> tuple[Membership, int]:
    """`user`'s membership and the number of admins, with every admin row locked.

    Locking the admin rows serialises concurrent changes: two admins demoting each other at
    once cannot both see "two admins" and leave none.
    """
    admin_ids = set(
        Membership.objects.select_for_update()
        .filter(organization=organization, role=Membership.Role.ADMIN)
        .values_list("user_id", flat=True)
    )
    if by.pk not in admin_ids:
        raise MemberChangeRefused("Only an organization's admins can change its members.")
    membership = (
        Membership.objects.select_for_update()
        .filter(organization=organization, user=user)
        .select_related("user")
        .first()
    )
    if membership is None:
        raise MemberChangeRefused(f"{user.get_username()} is not a member of {organization.name}.")
    return membership, len(admin_ids)


def membership_remove(*, organization: Organization, user, by) -> None:
    """Remove `user` from the organization, as admin `by`; refused for its last admin."""
    with transaction.atomic():
        membership, admins = _locked_membership(organization=organization, user=user, by=by)
        if membership.role == Membership.Role.ADMIN and admins == 1:
            raise MemberChangeRefused(LAST_ADMIN_REMOVE.format(name=user.get_username()))
        membership.delete()


def membership_role_set(*, organization: Organization, user, role: str, by) -> Membership:
    """Give member `user` the `role`, as admin `by`; demoting the last admin is refused."""
    if role not in Membership.Role.values:
        raise MemberChangeRefused(f"Unknown role {role!r}.")
    with transaction.atomic():
        membership, admins = _locked_membership(organization=organization, user=user, by=by)
        if membership.role == Membership.Role.ADMIN and role != Membership.Role.ADMIN:
            if admins == 1:
                raise MemberChangeRefused(LAST_ADMIN_DEMOTE.format(name=user.get_username()))
        if membership.role != role:
            Membership.objects.filter(pk=membership.pk).update(role=role)
            membership.role = role
    return membership
