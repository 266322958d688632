"""What `GET /v1/models` lists: callable catalog models, with the catalog's extra fields."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

from billing.models import MICROS_PER_DOLLAR
from inference_app.gateway.db_threads import run_db
from inference_app.gateway.ttl_cache import TTLCache
from inference_app.models import CatalogModel

_listing = TTLCache(settings.GATEWAY_CACHE_SECONDS)


def clear_caches() -> None:
    _listing.clear()


async def list_models() -> list[dict]:
    """Listed models with at least one enabled deployment, in OpenAI's model shape."""
    data = _listing.get("all")
    if data is None:
        data = await run_db(_load)
        _listing.set("all", data)
    return data


async def get_model(model_id: str) -> dict | None:
    return next((m for m in await list_models() if m["id"] == model_id), None)


def _usd(micros: int) -> str:
    return format((Decimal(micros) / MICROS_PER_DOLLAR).normalize(), "f")


def _params(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def describe(model: CatalogModel) -> dict:
    return {
        "id": model.model_id,
        "object": "model",
        "created": int(model.created_at.timestamp()),
        "owned_by": model.owned_by,
        "display_name": model.display_name,
        "description": model.description,
        "context_window": model.context_window,
        "modalities": {
            "input": ["text", "image"] if model.supports_vision else ["text"],
            "output": ["text"],
        },
        "parameters": {
            "active_billions": _params(model.active_params_b),
            "total_billions": _params(model.total_params_b),
        },
        "pricing": {
            "currency": "USD",
            "unit": "1M tokens",
            "input": _usd(model.input_price_micros),
            "output": _usd(model.output_price_micros),
            "input_micros": model.input_price_micros,
            "output_micros": model.output_price_micros,
        },
    }


def _load() -> list[dict]:
    models = CatalogModel.objects.filter(is_listed=True, deployments__is_enabled=True).distinct()
    return [describe(model) for model in models.order_by("sort_order", "display_name")]
