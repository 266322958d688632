"""GET /v1/generation?id=: a gateway call's figures, scoped to the caller's project. Rows are
made with calls_record directly (the write path has its own tests)."""

import uuid
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import AsyncClient
from django.utils import timezone

from billing.organizations import membership_set, organization_create
from inference_app.accounts import api_key_create, default_project_set, team_add_member
from inference_app.models import Project, Team
from tests.inference_app import gateway_world
from traces.reports import CallReport, new_span_id, new_trace_id
from traces.services import calls_record

URL = "/v1/generation"
REQUEST_ID = "chatcmpl-gen-test-1"

fake_engine = gateway_world.fake_engine
settlements_drained = gateway_world.settlements_drained
world = gateway_world.world


def record_call(world, *, request_id=REQUEST_ID, project=None, cost_micros=17, **fields):
    project = project or world.project
    started_at = timezone.now() - timedelta(seconds=2)
    report = CallReport(
        started_at=started_at,
        project_id=project.pk,
        span_id=new_span_id(),
        trace_id=new_trace_id(),
        organization_id=world.organization.pk,
        team=project.team.name,
        project=project.name,
        request_id=request_id,
        user_id=world.user.pk,
        api_key_prefix=world.key_prefix,
        model=gateway_world.TEXT_MODEL,
        deployment="text-a",
        stream=True,
        finish_reason="stop",
        first_token_at=started_at + timedelta(milliseconds=120),
        ended_at=started_at + timedelta(milliseconds=900),
        duration_ms=900,
        ttft_ms=120,
        prompt_tokens=7,
        completion_tokens=5,
        **fields,
    )
    costs = {request_id: cost_micros} if cost_micros is not None else None
    calls_record(reports=[report], costs=costs)
    return report


def other_organizations_key() -> str:
    """A key of a user of another organization, with a team and project of its own."""
    suffix = uuid.uuid4().hex[:6]
    org = organization_create(name="Other", slug=f"other-{suffix}")
    user = get_user_model().objects.create_user(f"bob-{suffix}", password="pw-123456789")
    membership_set(organization=org, user=user, role="admin")
    team = Team.objects.create(organization=org, name=f"team-{suffix}")
    team_add_member(team=team, user=user)
    default_project_set(user=user, project=Project.objects.create(team=team, name="main"))
    _, raw = api_key_create(user=user, name="other")
    return raw


async def get(world, *, query="?id=" + REQUEST_ID, project="team-a/main", key=None):
    headers = world.headers(project, key=key) if world is not None else {}
    return await AsyncClient().get(URL + query, headers=headers)


async def test_a_calls_figures(world):
    report = await sync_to_async(record_call)(world)
    response = await get(world)
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data == {
        "id": REQUEST_ID,
        "trace_id": report.trace_id,
        "span_id": report.span_id,
        "model": gateway_world.TEXT_MODEL,
        "deployment": "text-a",
        "created_at": data["created_at"],
        "streamed": True,
        "cancelled": False,
        "status": "ok",
        "finish_reason": "stop",
        "latency": 900,
        "generation_time": 780,
        "time_to_first_token": 120,
        "tokens_prompt": 7,
        "tokens_completion": 5,
        "tokens_counted_by_gateway": False,
        "total_cost_micros": 17,
        "total_cost": "0.000017",
        "source": "api",
    }
    assert data["created_at"].endswith("Z")
    assert data["created_at"].startswith(report.started_at.strftime("%Y-%m-%dT%H:%M:%S"))


async def test_a_cancelled_call_without_a_first_token(world):
    await sync_to_async(record_call)(
        world, request_id="chatcmpl-cancelled", status="cancelled", cost_micros=1_234_567
    )
    data = (await get(world, query="?id=chatcmpl-cancelled")).json()["data"]
    assert data["cancelled"] is True and data["status"] == "cancelled"
    assert data["total_cost"] == "1.234567"


async def test_an_unknown_or_unwritten_id_is_404_saying_it_may_take_a_moment(world):
    response = await get(world, query="?id=chatcmpl-not-yet")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "id"
    assert "moment" in error["message"]


async def test_missing_id_is_400(world):
    for query in ("", "?id=", "?id=%20"):
        response = await get(world, query=query)
        assert response.status_code == 400, query
        error = response.json()["error"]
        assert error["param"] == "id" and error["type"] == "invalid_request_error"


async def test_no_key_is_401(world):
    await sync_to_async(record_call)(world)
    response = await get(None)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


async def test_another_organizations_key_gets_404(world):
    await sync_to_async(record_call)(world)
    other_key = await sync_to_async(other_organizations_key)()
    response = await get(world, key=other_key, project=None)  # its own default project
    assert response.status_code == 404
    assert (await get(world)).status_code == 200


async def test_another_project_of_the_same_user_gets_404(world):
    await sync_to_async(record_call)(world, project=world.second_project)
    assert (await get(world, project="team-a/second")).status_code == 200
    assert (await get(world, project="team-a/main")).status_code == 404


async def test_post_is_405(world):
    response = await AsyncClient().post(URL + "?id=x", headers=world.headers())
    assert response.status_code == 405


async def test_a_real_call_through_the_gateway_has_the_ledgers_cost(world):
    response = await gateway_world.post_chat(
        world, {"model": gateway_world.TEXT_MODEL, "messages": gateway_world.HELLO}
    )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    [row] = await gateway_world.usage_rows()  # settled: the call is written with its row
    data = (await get(world, query=f"?id={request_id}")).json()["data"]
    assert data["id"] == request_id and data["source"] == "api"
    assert data["total_cost_micros"] == row.cost_micros == 17
    assert (data["tokens_prompt"], data["tokens_completion"]) == (7, 5)
    assert data["model"] == gateway_world.TEXT_MODEL and data["deployment"] == "text-a"
    assert response.headers["traceparent"] == f"00-{data['trace_id']}-{data['span_id']}-01"
