"""Factories for billing tests: organizations on a plan, admins and members, usage reports."""

import itertools
import uuid
from datetime import datetime

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from billing.models import Membership, Organization
from billing.organizations import membership_set, organization_create
from billing.usage import UsageReport

_counter = itertools.count(1)


def make_org(*, plan_code: str = "free", name: str = "") -> Organization:
    n = next(_counter)
    return organization_create(
        name=name or f"Org {n}", slug=f"org-{n}-{uuid.uuid4().hex[:6]}", plan_code=plan_code
    )


def make_user(
    *,
    organization: Organization | None = None,
    role: str = Membership.Role.ADMIN,
    username: str = "",
):
    user = get_user_model().objects.create_user(
        username=username or f"user{next(_counter)}", password="pw-123456789"
    )
    if organization is not None:
        membership_set(organization=organization, user=user, role=role)
    return user


def make_report(
    organization: Organization,
    *,
    request_id: str = "",
    prompt_tokens: int = 100,
    completion_tokens: int = 50,
    input_price_micros: int = 200_000,
    output_price_micros: int = 800_000,
    status: str = "ok",
    model: str = "meta-llama/Llama-3.1-8B-Instruct",
    team: str = "team-a",
    project: str = "proj-a",
    created_at: datetime | None = None,
) -> UsageReport:
    created_at = created_at or timezone.now()
    return UsageReport(
        request_id=request_id or f"req-{uuid.uuid4().hex}",
        organization_id=organization.pk,
        user_id=None,
        api_key_prefix="ys-test",
        team=team,
        project=project,
        model=model,
        deployment="",
        source="api",
        status=status,
        http_status=200 if status == "ok" else 499,
        error_code="",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        tokens_counted_by_gateway=False,
        time_to_first_token_ms=10,
        duration_ms=100,
        input_price_micros=input_price_micros,
        output_price_micros=output_price_micros,
        created_at=created_at,
        finished_at=created_at,
    )


@pytest.fixture
def free_org(db):
    return make_org(plan_code="free")


@pytest.fixture
def pro_org(db):
    return make_org(plan_code="pro")
