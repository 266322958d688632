"""GET /healthz: the state of each part; 200 while the database answers, 503 when it does not."""

import asyncio

from django.test import AsyncClient

from inference_app import health


async def test_healthz_reports_every_part(world, fake_engine):
    fake_engine.behaviour["engine-1.test"] = "refuse"
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["channel_layer"]["ok"] and body["broker"]["ok"]
    deployments = body["deployments"]
    assert set(deployments) == {"text-a", "vision-a", "two-first", "two-second"}
    assert deployments["text-a"]["ok"] and deployments["text-a"]["model"] == "test/text-model"
    assert not deployments["two-first"]["ok"]


async def test_healthz_is_503_when_the_database_is_down(world, fake_engine, monkeypatch):
    def broken():
        raise RuntimeError("database is down")

    monkeypatch.setattr(health, "_database_ping", broken)
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error" and not body["database"]["ok"]
    assert "database is down" in body["database"]["detail"]


async def test_static_files_are_served_by_the_async_middleware():
    from django.core.handlers.asgi import ASGIHandler
    from django.test import AsyncClient

    # No sync middleware: the whole chain is async (no thread per request, clean shutdown).
    assert asyncio.iscoroutinefunction(ASGIHandler()._middleware_chain)
    response = await AsyncClient().get("/static/css/app.css")
    assert response.status_code == 200 and response["content-type"].startswith("text/css")
    assert (await AsyncClient().get("/static/no-such-file.css")).status_code == 404
