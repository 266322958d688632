"""Which engine serves a request: the model's enabled deployments, by weight, skipping sick ones.

A deployment that refuses connections or answers 5xx before the first byte is skipped by this
process for DEPLOYMENT_RETRY_SECONDS; the next request after that window tries it again. The
state is per process on purpose: each gateway process finds out for itself, and the database
columns (is_healthy, last_error) are only written for operators to see.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time

from django.conf import settings
from django.utils import timezone

from inference_app.gateway import errors
from inference_app.gateway.db_threads import run_db
from inference_app.gateway.ttl_cache import TTLCache
from inference_app.models import CatalogModel, Deployment

log = logging.getLogger(__name__)

CACHE_SECONDS = settings.GATEWAY_CACHE_SECONDS


@dataclasses.dataclass(frozen=True)
class DeploymentTarget:
    name: str
    base_url: str
    engine_model: str
    api_key: str
    weight: int


@dataclasses.dataclass(frozen=True)
class ModelRoute:
    model_id: str
    display_name: str
    context_window: int
    supports_vision: bool
    input_price_micros: int
    output_price_micros: int
    deployments: tuple[DeploymentTarget, ...]


_routes = TTLCache(CACHE_SECONDS)
# Deployment name -> monotonic time until which it is skipped.
_unhealthy_until: dict[str, float] = {}


def clear_caches() -> None:
    _routes.clear()
    _unhealthy_until.clear()


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
        input_price_micros=model.input_price_micros,
        output_price_micros=model.output_price_micros,
        deployments=deployments,
    )


def is_healthy(name: str) -> bool:
    until = _unhealthy_until.get(name)
    return until is None or until <= time.monotonic()


def candidates(route: ModelRoute) -> list[DeploymentTarget]:
    """Healthy deployments in the order to try them: a weighted shuffle."""
    pool = [d for d in route.deployments if is_healthy(d.name)]
    ordered = []
    while pool:
        pick = random.choices(pool, weights=[d.weight for d in pool])[0]
        ordered.append(pick)
        pool.remove(pick)
    return ordered


async def mark_unhealthy(target: DeploymentTarget, reason: str) -> None:
    was_healthy = is_healthy(target.name)
    _unhealthy_until[target.name] = time.monotonic() + settings.DEPLOYMENT_RETRY_SECONDS
    log.warning("deployment %s marked unhealthy: %s", target.name, reason)
    if was_healthy:
        await _record_health(target.name, False, reason)


async def mark_healthy(target: DeploymentTarget) -> None:
    if _unhealthy_until.pop(target.name, None) is not None:
        await _record_health(target.name, True, "")


async def _record_health(name: str, healthy: bool, reason: str) -> None:
    try:
        await run_db(_write_health, name, healthy, reason)
    except Exception:  # the columns are for operators; routing never depends on them
        log.exception("could not record health of deployment %s", name)


def _write_health(name: str, healthy: bool, reason: str) -> None:
    Deployment.objects.filter(name=name).update(
        is_healthy=healthy, last_error=reason[:500], last_checked_at=timezone.now()
    )
