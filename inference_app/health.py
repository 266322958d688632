"""`GET /healthz`: is this process able to serve? Database, channel layer, broker, engines.

Every probe has a short timeout and they run concurrently, so a dead dependency costs at most
PROBE_TIMEOUT_SECONDS. Each deployment has a state: "ok" (it answers), "starting" (the embedded
engine, which has not answered since this process started: it is still loading its model) or
"down". The status is 503 when the database does not answer (without it nothing works) or while
a deployment is starting (requests to it would get 503: a load balancer, or `run_stack`, waits);
otherwise 200, with the other parts reported for operators and load balancers to read. A
deployment that is down does not make it 503: one dead engine must not take the gateway out of
its load balancer for every other model.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from inference_app.catalog import EMBEDDED_DEPLOYMENT_NAME
from inference_app.gateway import engine_client
from inference_app.models import Deployment

PROBE_TIMEOUT_SECONDS = 2.0


class EngineStartup:
    """Which deployments have answered a probe since this process started.

    `run_stack` starts the web process and the embedded engine together, and the engine takes a
    while to load its model: until it first answers it is "starting", not "down". An engine
    that answered once and stops answering is down. The start window is bounded
    (EMBEDDED_ENGINE_START_SECONDS), so an embedded deployment nobody starts cannot keep a
    process "starting" for ever."""

    def __init__(self) -> None:
        # Module import: the web process's first request (run_stack's first health check).
        self.started = time.monotonic()
        self.answered: set[str] = set()

    def state(self, name: str, *, answers: bool) -> str:
        if answers:
            self.answered.add(name)
            return "ok"
        if (
            name == EMBEDDED_DEPLOYMENT_NAME
            and name not in self.answered
            and time.monotonic() - self.started < settings.EMBEDDED_ENGINE_START_SECONDS
        ):
            return "starting"
        return "down"


startup = EngineStartup()


async def _timed(probe) -> dict:
    started = time.monotonic()
    try:
        detail = await asyncio.wait_for(probe, PROBE_TIMEOUT_SECONDS)
        result = {"ok": True, "detail": detail}
    except TimeoutError:
        result = {"ok": False, "detail": f"timed out after {PROBE_TIMEOUT_SECONDS}s"}
    except Exception as exc:
        result = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = int((time.monotonic() - started) * 1000)
    return result


def _database_ping() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


async def _database() -> str:
    return await sync_to_async(_database_ping)()


async def _channel_layer() -> str:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    if hasattr(layer, "connection"):  # channels_redis
        await layer.connection(0).ping()
    return type(layer).__name__


async def _redis_ping(url: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _broker() -> str:
    url = settings.CELERY_BROKER_URL
    scheme = urlsplit(url).scheme
    if scheme == "filesystem":
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        if not folder.is_dir():
            raise RuntimeError(f"broker folder {folder} is missing")
        return "filesystem"
    if scheme in ("redis", "rediss"):
        await _redis_ping(url)
        return scheme
    # Any other kombu transport: connect in a thread (kombu is sync), bounded by the timeout.
    await sync_to_async(_kombu_connect, thread_sensitive=False)(url)
    return scheme


def _kombu_connect(url: str) -> None:
    from kombu import Connection

    with Connection(url, connect_timeout=PROBE_TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=1)


def _deployments() -> list[dict]:
    return list(
        Deployment.objects.filter(is_enabled=True)
        .select_related("model")
        .values("name", "base_url", "upstream_api_key", "model__model_id")
    )


async def _probe_deployment(row: dict) -> str:
    ok, detail = await engine_client.probe(
        row["base_url"], row["upstream_api_key"], PROBE_TIMEOUT_SECONDS
    )
    if not ok:
        raise RuntimeError(detail)
    return detail


async def healthz(request: HttpRequest) -> JsonResponse:
    database = await _timed(_database())
    deployments: list[dict] = []
    if database["ok"]:
        try:
            deployments = await sync_to_async(_deployments)()
        except Exception:
            deployments = []
    channel_layer, broker, *engines = await asyncio.gather(
        _timed(_channel_layer()),
        _timed(_broker()),
        *(_timed(_probe_deployment(row)) for row in deployments),
    )
    states = [
        startup.state(row["name"], answers=engine["ok"])
        for row, engine in zip(deployments, engines, strict=True)
    ]
    if not database["ok"]:
        status = "error"
    elif "starting" in states:
        status = "starting"
    else:
        status = "ok"
    body = {
        "status": status,
        "database": database,
        "channel_layer": channel_layer,
        "broker": broker,
        "deployments": {
            row["name"]: {"model": row["model__model_id"], "state": state, **engine}
            for row, engine, state in zip(deployments, engines, states, strict=True)
        },
    }
    response = JsonResponse(body, status=200 if status == "ok" else 503)
    if status == "starting":
        # An expected state that run_stack and load balancers poll every second while the
        # engine loads: not worth a "Service Unavailable" warning in the log each time.
        response._has_been_logged = True
    return response
