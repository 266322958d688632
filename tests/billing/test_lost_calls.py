"""A request settled by the lost-request sweep gets its trace call too (metadata only, status
`lost`), in the sweep's transaction; a sweep that comes too late writes none."""

from datetime import timedelta

import pytest

from billing.lost import LOST_AFTER, reservations_settle_lost
from billing.models import LedgerEntry, UsageRecord
from billing.quota import reserve_credits_batch
from billing.usage import settle_usage
from inference_app.models import Project, Team
from tests.billing.conftest import make_report
from tests.billing.test_money_path import age, hold_request
from traces.models import Call, CallBody

pytestmark = pytest.mark.django_db


def test_a_swept_request_gets_a_lost_call_costing_its_charge(free_org):
    team = Team.objects.create(organization=free_org, name="team-a")
    project = Project.objects.create(team=team, name="proj-a")
    reserve_credits_batch([hold_request(free_org, "req-dead", 5_000)])
    age("req-dead", LOST_AFTER + timedelta(seconds=1))

    assert reservations_settle_lost() == 1

    row = UsageRecord.objects.get(request_id="req-dead")
    [call] = Call.objects.filter(request_id="req-dead")
    assert (call.status, call.error_code, call.op_name) == (
        "lost",
        "process_lost",
        "chat.completions",
    )
    assert call.attributes == {"process_lost": True} and call.error_message
    assert call.cost_micros == row.cost_micros == 200
    assert LedgerEntry.objects.get(request_id="req-dead").amount_micros == -200
    assert (call.project_id, call.organization_id, call.team, call.project) == (
        project.pk,
        free_org.pk,
        "team-a",
        "proj-a",
    )
    assert (call.prompt_tokens, call.completion_tokens, call.tokens_counted_by_gateway) == (
        1_000,
        0,
        True,
    )
    assert call.started_at == row.created_at and call.ended_at == row.finished_at
    assert len(call.trace_id) == 32 and call.parent_span_id == ""
    assert not call.has_body and not CallBody.objects.exists()


def test_a_sweep_too_late_writes_no_second_call(free_org):
    reserve_credits_batch([hold_request(free_org, "req-race", 5_000)])
    age("req-race", LOST_AFTER * 2)
    settle_usage(make_report(free_org, request_id="req-race"))

    assert reservations_settle_lost() == 0

    [call] = Call.objects.filter(request_id="req-race")
    assert call.status == "ok" and call.attributes == {}
