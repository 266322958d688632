"""Which engine serves a request: the model's enabled deployments, by weight, skipping those
out of rotation.

A deployment leaves rotation when it gives no answer (connection refused, timed out, cut), or
when it answered 5xx to FAILURES_TO_TAKE_OUT requests in a row within FAILURE_WINDOW_SECONDS,
from at least two organizations. An engine error caused by one request (a grammar or tool
schema the engine cannot handle) is that request's answer and nothing more: one tenant sending
bad requests in a loop can never take a model away from the others.

A deployment out of rotation comes back when it answers again, as a background probe
(`GET {base_url}/models` every DEPLOYMENT_PROBE_SECONDS) finds out; the probe runs on the
event loop only while some deployment is out. The state is per process on purpose: each
gateway process finds out for itself, and the database columns (is_healthy, last_error) are
only written for operators to see.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time

from django.conf import settings
from django.utils import timezone

from inference_app.gateway import engine_client, errors
from inference_app.gateway.db_threads import run_db
from inference_app.gateway.ttl_cache import TTLCache
from inference_app.models import CatalogModel, Deployment

log = logging.getLogger(__name__)

CACHE_SECONDS = settings.GATEWAY_CACHE_SECONDS
FAILURES_TO_TAKE_OUT = 3
FAILURE_WINDOW_SECONDS = 30.0
ORGANIZATIONS_TO_TAKE_OUT = 2


@dataclasses.dataclass(frozen=True)
class DeploymentTarget:
    name: str
    base_url: str
    engine_model: str
    api_key: str
    weight: int
    # The database's is_healthy when the route was read: a deployment recorded as down by a
    # process that died before its probe brought it back is recorded healthy again by the
    # first process it answers (the cards and /healthz read the column).
    recorded_healthy: bool = True


@dataclasses.dataclass(frozen=True)
class ModelRoute:
    model_id: str
    display_name: str
    context_window: int
    supports_vision: bool
    image_tokens_max: int
    input_price_micros: int
    output_price_micros: int
    deployments: tuple[DeploymentTarget, ...]


_routes = TTLCache(CACHE_SECONDS)
# Deployments out of rotation in this process, by name: the probe tries each until it answers.
_out: dict[str, DeploymentTarget] = {}
# Deployment name -> (monotonic time, organization id) of its 5xx answers since its last success.
_failures: dict[str, list[tuple[float, int]]] = {}
_prober: asyncio.Task | None = None
# Deployments this process recorded healthy again after answering (see record_success).
_recorded_back: set[str] = set()
_background: set[asyncio.Task] = set()


def clear_caches() -> None:
    global _prober
    _recorded_back.clear()
    _routes.clear()
    _out.clear()
    _failures.clear()
    if _prober is not None and not _prober.get_loop().is_closed():
        _prober.cancel()
    _prober = None


async def get_route(model_id: str) -> ModelRoute:
    """The model and its enabled deployments, or 404 model_not_found."""
    route = _routes.get(model_id)
    if route is None:
        route = await run_db(_load_route, model_id)
        _routes.set(model_id, route)
    if route is False:
        raise errors.model_not_found(model_id)
    return route


def _load_route(model_id: str) -> ModelRoute | bool:
    model = CatalogModel.objects.filter(model_id=model_id).first()
    if model is None:
        return False
    deployments = tuple(
        DeploymentTarget(
            name=d.name,
            base_url=d.base_url.rstrip("/"),
            engine_model=d.upstream_model or model.model_id,
            api_key=d.upstream_api_key,
            weight=max(d.weight, 1),
            recorded_healthy=d.is_healthy,
        )
        for d in Deployment.objects.filter(model=model, is_enabled=True).order_by("pk")
    )
    if not deployments:
        return False
    return ModelRoute(
        model_id=model.model_id,
        display_name=model.display_name,
        context_window=model.context_window,
        supports_vision=model.supports_vision,
        image_tokens_max=model.image_tokens_max,
        input_price_micros=model.input_price_micros,
        output_price_micros=model.output_price_micros,
        deployments=deployments,
    )


def is_healthy(name: str) -> bool:
    """Is the deployment in rotation (in this process)?"""
    return name not in _out


def candidates(route: ModelRoute) -> list[DeploymentTarget]:
    """Deployments in rotation, in the order to try them: a weighted shuffle."""
    if _out:
        # A probe started on an event loop that has since ended (async_to_sync runs one per
        # call) would leave its deployments out for good: make sure one runs on this loop.
        _ensure_prober()
    pool = [d for d in route.deployments if d.name not in _out]
    ordered = []
    while pool:
        pick = random.choices(pool, weights=[d.weight for d in pool])[0]
        ordered.append(pick)
        pool.remove(pick)
    return ordered


def record_success(target: DeploymentTarget) -> None:
    """The deployment answered a request: its run of failures, if any, is over."""
    if _failures:
        _failures.pop(target.name, None)
    if not target.recorded_healthy and target.name not in _recorded_back:
        # Once per process until the route is read again (the cache holds the old column).
        _recorded_back.add(target.name)
        task = asyncio.get_running_loop().create_task(_record_health(target.name, True, ""))
        _background.add(task)
        task.add_done_callback(_background.discard)


async def record_failure(
    target: DeploymentTarget, failure: engine_client.EngineUnavailable, *, organization_id: int
) -> None:
    """The deployment did not take one request: judge whether it is the deployment's fault."""
    if not failure.answered:
        # No answer at all: nobody's request can be served there now.
        await _take_out(target, str(failure))
        return
    if failure.status < 500:
        return  # 429: busy, not sick; this request tries another deployment
    now = time.monotonic()
    recent = [
        (at, org) for at, org in _failures.get(target.name, ()) if now - at < FAILURE_WINDOW_SECONDS
    ]
    recent.append((now, organization_id))
    _failures[target.name] = recent
    organizations = {org for _, org in recent}
    if len(recent) >= FAILURES_TO_TAKE_OUT and len(organizations) >= ORGANIZATIONS_TO_TAKE_OUT:
        await _take_out(
            target,
            f"{len(recent)} failed requests from {len(organizations)} organizations: {failure}",
        )


async def _take_out(target: DeploymentTarget, reason: str) -> None:
    _failures.pop(target.name, None)
    if target.name in _out:
        return
    _out[target.name] = target
    log.warning("deployment %s taken out of rotation: %s", target.name, reason)
    _ensure_prober()
    await _record_health(target.name, False, reason)


def _ensure_prober() -> None:
    global _prober
    loop = asyncio.get_running_loop()
    if _prober is None or _prober.done() or not _prober.get_loop().is_running():
        _prober = loop.create_task(_probe_until_all_back(), name="deployment-prober")


def prober_idle() -> bool:
    """No probe running in this process (every deployment is in rotation)."""
    return _prober is None or _prober.done()


async def _probe_until_all_back() -> None:
    while _out:
        await asyncio.sleep(settings.DEPLOYMENT_PROBE_SECONDS)
        try:
            targets = list(_out.values())
            answers = await asyncio.gather(*(_probe(target) for target in targets))
            for target, answered in zip(targets, answers, strict=True):
                if answered and _out.pop(target.name, None) is not None:
                    log.warning("deployment %s answers again: back in rotation", target.name)
                    await _record_health(target.name, True, "")
        except Exception:  # the probe must outlive any surprise, or a deployment stays out
            log.exception("probing deployments failed")


async def _probe(target: DeploymentTarget) -> bool:
    try:
        ok, _ = await engine_client.probe(
            target.base_url, target.api_key, settings.ENGINE_CONNECT_TIMEOUT
        )
    except Exception:
        return False
    return ok


async def _record_health(name: str, healthy: bool, reason: str) -> None:
    try:
        await run_db(_write_health, name, healthy, reason)
    except Exception:  # the columns are for operators; routing never depends on them
        log.exception("could not record health of deployment %s", name)


def _write_health(name: str, healthy: bool, reason: str) -> None:
    Deployment.objects.filter(name=name).update(
        is_healthy=healthy, last_error=reason[:500], last_checked_at=timezone.now()
    )
