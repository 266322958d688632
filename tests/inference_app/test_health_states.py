"""GET /healthz while the embedded engine loads: "starting" (503) until it first answers.

An embedded engine that has not answered since this process started is still loading, so the
process is not ready yet; one that answered before and stopped is "down", and so is any other
deployment that does not answer (one dead engine must not take the gateway out of its load
balancer for every other model).
"""

from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import AsyncClient

from inference_app import health
from inference_app.catalog import EMBEDDED_DEPLOYMENT_NAME, ensure_embedded_deployment


@pytest.fixture
def fresh_process(monkeypatch):
    """As if this process had just started: no engine has answered it yet."""
    monkeypatch.setattr(health, "startup", health.EngineStartup())


@pytest.fixture
def embedded_host(world, fresh_process) -> str:
    ensure_embedded_deployment()
    return urlsplit(settings.EMBEDDED_ENGINE_URL).hostname


async def healthz() -> tuple[int, dict]:
    response = await AsyncClient().get("/healthz")
    return response.status_code, response.json()


async def test_the_embedded_engine_is_starting_until_it_first_answers(embedded_host, fake_engine):
    fake_engine.behaviour[embedded_host] = "refuse"  # not listening yet: still loading the model
    status, body = await healthz()
    assert status == 503, body
    assert body["status"] == "starting"
    embedded = body["deployments"][EMBEDDED_DEPLOYMENT_NAME]
    assert embedded["state"] == "starting" and not embedded["ok"], embedded
    assert body["deployments"]["text-a"]["state"] == "ok"

    fake_engine.behaviour[embedded_host] = "ok"  # loaded
    status, body = await healthz()
    assert status == 200, body
    assert body["status"] == "ok"
    embedded = body["deployments"][EMBEDDED_DEPLOYMENT_NAME]
    assert embedded["state"] == "ok" and embedded["ok"], embedded

    fake_engine.behaviour[embedded_host] = "refuse"  # it answered once: now it is down
    status, body = await healthz()
    assert status == 200, body
    assert body["status"] == "ok"
    embedded = body["deployments"][EMBEDDED_DEPLOYMENT_NAME]
    assert embedded["state"] == "down" and not embedded["ok"], embedded


async def test_an_external_deployment_that_never_answered_is_down_not_starting(
    world, fresh_process, fake_engine
):
    fake_engine.behaviour["engine-1.test"] = "refuse"
    status, body = await healthz()
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["deployments"]["two-first"]["state"] == "down"
    assert body["deployments"]["two-second"]["state"] == "ok"


async def test_past_the_start_window_an_embedded_engine_that_never_answered_is_down(
    embedded_host, fake_engine, settings
):
    # run_stack --no-engine sets the window to 0: nobody is starting the embedded engine.
    settings.EMBEDDED_ENGINE_START_SECONDS = 0
    fake_engine.behaviour[embedded_host] = "refuse"
    status, body = await healthz()
    assert status == 200, body
    assert body["deployments"][EMBEDDED_DEPLOYMENT_NAME]["state"] == "down"


async def test_starting_is_not_logged_as_a_server_error(embedded_host, fake_engine, caplog):
    # run_stack polls every second while the engine loads: no warning line per poll.
    fake_engine.behaviour[embedded_host] = "refuse"
    with caplog.at_level("WARNING", logger="django.request"):
        status, _ = await healthz()
    assert status == 503
    assert not [record for record in caplog.records if record.name == "django.request"]
