"""Which deployments stay in rotation: an engine error caused by one request is that request's
answer, never a reason to take the model away from everyone else.

A deployment leaves rotation (in this process) when it does not answer at all, or when it has
answered 5xx to several requests in a row from more than one organization; it comes back when
the background probe finds it answering again, not when a request happens to try it.
"""

import asyncio
import dataclasses
import json
import uuid

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from billing.organizations import membership_set, organization_create
from inference_app.accounts import api_key_create, default_project_set, team_add_member
from inference_app.gateway import routing
from inference_app.models import Deployment, Project, Team
from tests.inference_app.gateway_world import (
    HELLO,
    TEXT_MODEL,
    TWO_DEPLOYMENTS_MODEL,
    FakeEngine,
    post_chat,
    usage_rows,
)

# A parameter this fake engine chokes on, as llama.cpp does on a grammar it cannot parse.
BAD = {"grammar": "root ::= ("}


@dataclasses.dataclass
class PickyEngine(FakeEngine):
    """The fake engine, answering 500 to any request that carries a grammar, and counting
    every HTTP call it gets (probes included)."""

    probe_ok: bool = True
    calls: int = 0
    probes: int = 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if request.method == "GET":
            self.probes += 1
            if not self.probe_ok and self.behaviour.get(request.url.host) != "refuse":
                return httpx.Response(500, json={"error": {"message": "still broken"}})
        elif "grammar" in json.loads(request.content):
            return httpx.Response(
                500, json={"error": {"message": "failed to parse grammar", "code": 500}}
            )
        return await super().handle(request)


@pytest.fixture
def engine(fake_engine, settings) -> PickyEngine:
    from inference_app.gateway import engine_client

    settings.DEPLOYMENT_PROBE_SECONDS = 0.05
    picky = PickyEngine()
    engine_client.install_transport(picky.transport())
    return picky


@dataclasses.dataclass
class Tenant:
    """A caller of another organization than the world's."""

    raw_key: str
    project: str

    def headers(self, project=None, key=None) -> dict:
        return {"Authorization": f"Bearer {self.raw_key}", "OpenAI-Project": self.project}


def make_tenant() -> Tenant:
    suffix = uuid.uuid4().hex[:6]
    org = organization_create(name="Rival", slug=f"rival-{suffix}")
    user = get_user_model().objects.create_user(f"bob-{suffix}", password="pw-123456789")
    membership_set(organization=org, user=user, role="admin")
    team = Team.objects.create(organization=org, name=f"rival-{suffix}")
    team_add_member(team=team, user=user)
    project = Project.objects.create(team=team, name="main")
    default_project_set(user=user, project=project)
    _, raw = api_key_create(user=user, name="tests")
    return Tenant(raw_key=raw, project=f"{team.name}/main")


@pytest.fixture
async def rival(world):
    return await sync_to_async(make_tenant)()


async def ask(who, model=TEXT_MODEL, **fields):
    return await post_chat(who, {"model": model, "messages": HELLO, **fields})


async def test_one_tenants_bad_requests_never_fail_another_tenants(world, rival, engine):
    for _ in range(10):
        bad = await ask(world, **BAD)
        assert bad.status_code == 500, bad.content
        error = bad.json()["error"]
        assert error["code"] == "server_error" and error["message"] == "failed to parse grammar"
        good = await ask(rival)
        assert good.status_code == 200, good.content
    assert routing.is_healthy("text-a")
    assert (await Deployment.objects.aget(name="text-a")).is_healthy
    # The bad requests were refused by the engine, so they cost nothing and left no row.
    assert len(await usage_rows()) == 10


async def test_bad_requests_streamed_or_not_from_one_tenant_never_take_a_deployment_out(
    world, engine
):
    for stream in [False, True] * 10:
        assert (await ask(world, stream=stream, **BAD)).status_code == 500
    assert routing.is_healthy("text-a")
    assert (await ask(world)).status_code == 200


async def test_failures_from_two_organizations_take_a_deployment_out(world, rival, engine):
    engine.probe_ok = False  # the probe must not bring it back during this test
    for who in (world, rival, world):
        assert (await ask(who, **BAD)).status_code == 500
    assert not routing.is_healthy("text-a")
    calls = engine.calls - engine.probes
    # Its only deployment is out: 503 at once, without asking the engine.
    response = await ask(rival)
    assert response.status_code == 503 and response.json()["error"]["code"] == "model_unavailable"
    assert engine.calls - engine.probes == calls
    row = await Deployment.objects.aget(name="text-a")
    assert not row.is_healthy and "failed to parse grammar" in row.last_error


async def test_a_success_in_between_starts_the_count_again(world, rival, engine):
    for who in (world, rival):
        assert (await ask(who, **BAD)).status_code == 500
    assert (await ask(world)).status_code == 200
    for who in (rival, world):
        assert (await ask(who, **BAD)).status_code == 500
    assert routing.is_healthy("text-a")


async def test_an_engine_503_counts_as_a_failure_but_takes_nothing_out_alone(world, engine):
    engine.behaviour["engine-a.test"] = "http503"
    for _ in range(5):
        response = await ask(world)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "engine_overloaded"
    assert routing.is_healthy("text-a")


async def test_a_deployment_refusing_connections_is_skipped_and_comes_back_by_the_probe(
    world, engine
):
    engine.behaviour["engine-1.test"] = "refuse"
    for _ in range(3):
        response = await ask(world, model=TWO_DEPLOYMENTS_MODEL)
        assert response.status_code == 200, response.content
    # Only the first request tried engine-1 (the heavy favourite); the others went straight
    # to engine-2.
    assert engine.hosts_called() == ["engine-2.test"] * 3
    assert not routing.is_healthy("two-first")
    assert not (await Deployment.objects.aget(name="two-first")).is_healthy

    # The engine answers again: the probe, not a request, brings it back.
    del engine.behaviour["engine-1.test"]
    await _until(lambda: routing.is_healthy("two-first"))
    await _until_async(_row_is_healthy, "two-first")
    assert engine.hosts_called() == ["engine-2.test"] * 3
    response = await ask(world, model=TWO_DEPLOYMENTS_MODEL)
    assert response.status_code == 200
    assert engine.hosts_called()[-1] == "engine-1.test"


async def test_a_deployment_stays_out_while_its_probe_fails(world, engine, settings):
    engine.behaviour["engine-a.test"] = "refuse"
    assert (await ask(world)).status_code == 503
    probes = engine.probes
    await _until(lambda: engine.probes >= probes + 3)
    assert not routing.is_healthy("text-a")
    response = await ask(world)
    assert response.status_code == 503 and response.json()["error"]["code"] == "model_unavailable"


async def test_the_probe_stops_once_every_deployment_is_back(world, engine):
    engine.behaviour["engine-a.test"] = "refuse"
    assert (await ask(world)).status_code == 503
    del engine.behaviour["engine-a.test"]
    await _until(lambda: routing.is_healthy("text-a"))
    await _until(lambda: routing.prober_idle())
    probes = engine.probes
    await asyncio.sleep(0.3)
    assert engine.probes == probes


async def _row_is_healthy(name: str) -> bool:
    return (await Deployment.objects.aget(name=name)).is_healthy


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _until_async(condition, *args, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition(*args):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_probe_left_on_an_ended_event_loop_is_started_again(world, engine):
    # async_to_sync (Celery tasks, management commands) runs each call on a loop of its own,
    # which ends with the call and takes its tasks along.
    from inference_app.gateway.engine_client import EngineUnavailable

    [target] = (await routing.get_route(TEXT_MODEL)).deployments
    refused = EngineUnavailable("connect: refused", status=None)

    def on_a_loop_of_its_own():
        asyncio.run(routing.record_failure(target, refused, organization_id=0))

    await sync_to_async(on_a_loop_of_its_own, thread_sensitive=False)()
    assert not routing.is_healthy("text-a")
    # The next request finds the deployment out, and a probe running again on this loop.
    assert (await ask(world)).status_code == 503
    await _until(lambda: routing.is_healthy("text-a"))
    assert (await ask(world)).status_code == 200
