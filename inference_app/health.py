"""`GET /healthz`: is this process able to serve? Database, channel layer, broker, engines.

Every probe has a short timeout and they run concurrently, so a dead dependency costs at most
PROBE_TIMEOUT_SECONDS. The status is 200 when the database answers (without it nothing works),
503 otherwise; the other parts are reported for operators and load balancers to read.
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

from inference_app.gateway import engine_client
from inference_app.models import Deployment

PROBE_TIMEOUT_SECONDS = 2.0


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
    body = {
        "status": "ok" if database["ok"] else "error",
        "database": database,
        "channel_layer": channel_layer,
        "broker": broker,
        "deployments": {
            row["name"]: {"model": row["model__model_id"], **engine}
            for row, engine in zip(deployments, engines, strict=True)
        },
    }
    return JsonResponse(body, status=200 if database["ok"] else 503)
