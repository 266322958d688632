"""Retention deletes calls older than their organization's period, with their bodies, and
nothing else."""

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings

from traces.models import Call, CallBody, RetentionPolicy, Session
from traces.retention import calls_delete_expired, retention_days_for, retention_policy_set

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ORG_A, ORG_B, ORG_C = 101, 202, 303
PROJECT = {ORG_A: 11, ORG_B: 22, ORG_C: 33}


def make_call(org: int, days_ago: float, *, body: bool = True, session: str = "") -> Call:
    started = NOW - timedelta(days=days_ago)
    call = Call.objects.create(
        started_at=started,
        project_id=PROJECT[org],
        span_id=secrets.token_hex(8),
        trace_id=secrets.token_hex(16),
        organization_id=org,
        team="team",
        project="project",
        session_id=session,
        has_body=body,
    )
    if body:
        CallBody.objects.create(
            started_at=started, project_id=PROJECT[org], span_id=call.span_id, inputs={"x": 1}
        )
    return call


@override_settings(TRACE_RETENTION_DAYS=30)
def test_old_calls_of_each_organization_go_and_nothing_else():
    RetentionPolicy.objects.create(organization_id=ORG_A, days=7)
    RetentionPolicy.objects.create(organization_id=ORG_B, days=90)
    a_old = [make_call(ORG_A, 8), make_call(ORG_A, 40, body=False), make_call(ORG_A, 100)]
    a_recent = make_call(ORG_A, 6)
    b_older_than_a_limit = make_call(ORG_B, 60)
    b_old = make_call(ORG_B, 91)
    c_recent = make_call(ORG_C, 29)  # no policy: the default 30 days
    c_old = make_call(ORG_C, 31)

    deleted = calls_delete_expired(now=NOW, batch=2)  # several batches for A

    assert deleted == 5
    left = set(Call.objects.values_list("span_id", flat=True))
    assert left == {a_recent.span_id, b_older_than_a_limit.span_id, c_recent.span_id}
    # Bodies went with their calls, and only those.
    assert set(CallBody.objects.values_list("span_id", flat=True)) == left
    for gone in [*a_old, b_old, c_old]:
        assert not CallBody.objects.filter(span_id=gone.span_id).exists()


def test_nothing_expired_deletes_nothing():
    make_call(ORG_A, 1)
    assert calls_delete_expired(now=NOW) == 0
    assert Call.objects.count() == 1 and CallBody.objects.count() == 1


def test_a_body_of_another_project_with_the_same_time_and_span_stays():
    old = make_call(ORG_A, 40)
    # Same started_at and span id, another project (an OTLP client reusing ids): not this call.
    CallBody.objects.create(
        started_at=old.started_at, project_id=PROJECT[ORG_B], span_id=old.span_id
    )
    RetentionPolicy.objects.create(organization_id=ORG_B, days=365)
    calls_delete_expired(now=NOW)
    assert list(CallBody.objects.values_list("project_id", flat=True)) == [PROJECT[ORG_B]]


def test_sessions_without_calls_older_than_the_cutoff_go():
    RetentionPolicy.objects.create(organization_id=ORG_A, days=7)
    old = Session.objects.create(id="s-old", organization_id=ORG_A, project_id=PROJECT[ORG_A],
                                 user_id=1, trace_id="a" * 32)  # fmt: skip
    kept = Session.objects.create(id="s-kept", organization_id=ORG_A, project_id=PROJECT[ORG_A],
                                  user_id=1, trace_id="b" * 32)  # fmt: skip
    other = Session.objects.create(id="s-b", organization_id=ORG_B, project_id=PROJECT[ORG_B],
                                   user_id=1, trace_id="c" * 32)  # fmt: skip
    Session.objects.filter(pk__in=[old.pk, kept.pk, other.pk]).update(
        updated_at=NOW - timedelta(days=20)
    )
    make_call(ORG_A, 10, session=old.pk)  # expired: goes, then its session is empty
    make_call(ORG_A, 3, session=kept.pk)  # a recent call keeps its session

    calls_delete_expired(now=NOW)

    # B's session is 20 days old, within the default 30.
    assert set(Session.objects.values_list("pk", flat=True)) == {"s-kept", "s-b"}


def test_policy_bounds_and_default():
    assert retention_days_for(organization_id=ORG_A) == 30
    retention_policy_set(organization_id=ORG_A, days=9)
    assert retention_days_for(organization_id=ORG_A) == 9
    for bad in (0, 3651):
        with pytest.raises(ValueError):
            retention_policy_set(organization_id=ORG_A, days=bad)
    assert retention_days_for(organization_id=ORG_A) == 9


def test_command_runs_retention(capsys):
    make_call(ORG_A, 45)
    call_command("traces_jobs", "retention", "--now", NOW.isoformat())
    assert "1 call(s) deleted" in capsys.readouterr().out
    assert not Call.objects.exists()
    call_command("traces_jobs", "partitions")  # SQLite: nothing to do, says so
    assert "not partitioned" in capsys.readouterr().out
